"""Fault injection: SIGKILL a short training run at many moments, resume it each time, compare with a clean run.

    .venv/bin/python scripts/fault_injection.py [--kills 40] [--seed 0] [--work-dir DIR] [--keep]

The harness is trainlab.testing.fault_injection (its docstring says what is killed when and what is compared);
tests/test_reliability.py runs a short version of it in CI.
"""

from trainlab.testing.fault_injection import main

if __name__ == "__main__":
    raise SystemExit(main())
