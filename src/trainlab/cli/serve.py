"""`trainlab serve`: a checkpoint behind HTTP, on the serving API (trainlab.serve)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from trainlab.cli.options import EXIT_OK, Output, add_checkpoint_options, device_argument, path_argument
from trainlab.datasets_registry import BUILTIN_NAMES

if TYPE_CHECKING:
    from trainlab.serve.settings import ServeSettings


def add_commands(commands: argparse._SubParsersAction) -> None:
    from trainlab.serve.settings import ServeSettings

    defaults = ServeSettings(checkpoint="")
    serve = commands.add_parser(
        "serve",
        help="serve a model over HTTP: JSON API, Open Inference Protocol, metrics and a page to try it",
        description="Serve a checkpoint with FastAPI and uvicorn (pip install 'trainlab[serve]'). The page is at "
        "/, the API docs at /docs. Stop with Ctrl-C or SIGTERM: requests in flight finish first.",
    )
    add_checkpoint_options(serve)
    serve.add_argument(
        "--host",
        default=defaults.host,
        help="address to listen on (default: 127.0.0.1, this machine only; any other needs --token)",
    )
    serve.add_argument("--port", type=int, default=defaults.port, help="port (default: 8000; 0: any free port)")
    serve.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="server processes, each with a copy of the model (default: 1)",
    )
    serve.add_argument(
        "--token", help="require 'Authorization: Bearer TOKEN' on the API (default: $TRAINLAB_TOKEN if set)"
    )
    serve.add_argument("--name", help="the model's name in /v2/models/NAME (default: the run directory's name)")
    add_limit_options(serve, defaults)
    serve.add_argument("--threads", type=int, default=defaults.threads, help="torch threads per worker (default: 1)")
    serve.add_argument(
        "--device", type=device_argument, default=defaults.device, help="cpu (default), cuda, mps or auto"
    )
    serve.add_argument(
        "--data-dir",
        type=path_argument,
        help="where the run's test images are (for sample images and per-class figures; default: the run's own)",
    )
    serve.add_argument(
        "--dataset",
        choices=BUILTIN_NAMES,
        default=defaults.dataset,
        help="a plain state_dict's data set: its class names and sample images (default: fashion-mnist)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request (slower)")
    serve.add_argument("--debug", action="store_true", help="show tracebacks")
    serve.set_defaults(handler=cmd_serve, json=False)


def add_limit_options(serve: argparse.ArgumentParser, defaults: ServeSettings) -> None:
    """The bounds of what one request may send and of the work waiting for the model."""
    serve.add_argument(
        "--max-upload-mb", type=float, default=defaults.max_upload_mb, help="largest request body (default: 10)"
    )
    serve.add_argument(
        "--max-request-pixels",
        type=int,
        default=defaults.max_request_pixels,
        help="pixels the pictures of one request may declare in all, counted from their headers before any is "
        f"decoded; more: 413 (default: {defaults.max_request_pixels:,})",
    )
    serve.add_argument(
        "--max-batch",
        type=int,
        default=defaults.max_batch,
        help=f"images gathered into one forward pass (default: {defaults.max_batch}; 1: no batching)",
    )
    serve.add_argument(
        "--max-wait-ms",
        type=float,
        default=defaults.max_wait_ms,
        help="how long a batch waits for requests still arriving; a lone request never waits "
        f"(default: {defaults.max_wait_ms:g})",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=defaults.max_queue,
        help=f"requests waiting for the model before new ones get 503 (default: {defaults.max_queue})",
    )


def cmd_serve(args: argparse.Namespace, out: Output) -> int:
    from trainlab.serve.server import serve
    from trainlab.serve.settings import ServeSettings

    settings = ServeSettings(
        checkpoint=args.checkpoint,
        model=args.model,
        name=args.name,
        host=args.host,
        port=args.port,
        workers=args.workers,
        token=args.token,
        max_upload_mb=args.max_upload_mb,
        max_request_pixels=args.max_request_pixels,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        threads=args.threads,
        device=args.device,
        trust_pickle=args.trust_pickle,
        trust_model_code=args.trust_model_code,
        dataset=args.dataset,
        data_dir=args.data_dir,
    )
    serve(settings, say=lambda text: print(text, file=sys.stderr, flush=True), access_log=args.access_log)
    return EXIT_OK
