import os
import sys

from trainlab.cli import main, under_torchrun

status = main()
if under_torchrun():
    # One of the processes torchrun started: its run has ended, said so and closed its files. Gloo's threads can
    # abort the interpreter's teardown ("terminate called without an active exception", status -6) and turn a
    # clean exit 2 into a crash, so this process leaves without the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
raise SystemExit(status)
