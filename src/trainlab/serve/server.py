"""Running the app: the socket bound first (a taken port is one line, not a traceback), then uvicorn in one
process or several (uvicorn's own supervisor, each worker loading the model). Ctrl-C or SIGTERM: uvicorn
stops taking connections, lets the requests in flight finish, then the batcher drains and the process ends."""

from __future__ import annotations

import importlib.util
import inspect
import os
import signal
import socket
import tempfile
from collections.abc import Callable

from trainlab.errors import TrainlabError
from trainlab.serve.settings import SETTINGS_VARIABLE, ServeSettings

NEEDED = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}
NEEDED["prometheus_client"] = "prometheus-client"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACEFUL_SECONDS = 30  # how long requests in flight may take to finish after Ctrl-C / SIGTERM


def check_installed() -> None:
    """One line naming the extra when the serving packages are missing."""
    missing = [package for module, package in NEEDED.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise TrainlabError(
            f"serving needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed; "
            "install them with: pip install 'trainlab[serve]'"
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == 98:  # EADDRINUSE
            raise TrainlabError(f"port {port} on {host} is in use; pick another with --port") from None
        raise TrainlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def urls(host: str, port: int, token: str | None) -> tuple[str, str]:
    """The page's URL (with the token in the fragment, which browsers never send) and the API docs'."""
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    return base + "/" + (f"#token={token}" if token else ""), base + "/docs"


def serve(settings: ServeSettings, say: Callable[[str], None] = print, access_log: bool = False) -> None:
    """Serve the checkpoint until Ctrl-C or SIGTERM."""
    check_installed()
    settings = settings.checked()
    import uvicorn

    from trainlab.serve.app import create_app
    from trainlab.serve.model import ServedModel

    served = ServedModel(settings)  # a bad checkpoint fails here, before the port is taken
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    options = dict(
        host=settings.host,
        port=port,
        log_level="warning",
        access_log=access_log,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="on",
    )
    page, docs = urls(settings.host, port, settings.token)
    say(
        f"Serving {served.name} ({served.predictor.model_name}, {len(served.predictor.classes)} classes) "
        f"from {served.loaded.path}"
    )
    for name, why in served.skipped_reports.items():
        say(f"  not serving the report {name}: {why}; only regular files inside the run directory are served")
    say(f"  page:    {page}")
    say(f"  API:     {docs}")
    say(f"  workers: {settings.workers}, batches of up to {settings.max_batch} images, queue of {settings.max_queue}")
    say("Stop with Ctrl-C")
    stopped_by: list[int] = []  # uvicorn re-raises the signal it stopped on; noted here, the process exits 0
    previous = {number: signal.signal(number, lambda got, frame: stopped_by.append(got)) for number in STOP_SIGNALS}
    try:
        if settings.workers == 1:
            uvicorn.Server(uvicorn.Config(create_app(served=served), **options)).run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess

            del served  # each worker loads its own copy
            os.environ[SETTINGS_VARIABLE] = settings.to_json()
            with tempfile.TemporaryDirectory(prefix="trainlab-metrics-") as folder:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # every worker's figures in /metrics
                config = uvicorn.Config(
                    "trainlab.serve.app:app_from_environment", factory=True, workers=settings.workers, **options
                )
                if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.30
                    Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()
                else:
                    Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    why = f" on {signal.Signals(stopped_by[0]).name}" if stopped_by else ""
    say(f"Stopped{why}: the requests in flight were answered")
