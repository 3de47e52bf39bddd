"""The web page at / that tries the model, and its static files; no model data, so no token is needed."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles


def add_page(app: FastAPI) -> None:
    """GET / (the page, read once here), /favicon.ico and /static/."""
    static = resources.files("trainlab.serve") / "static"
    page = (static / "index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
