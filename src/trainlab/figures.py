"""matplotlib figures without pyplot, for every layer: a Figure to draw on and its PNG bytes.

matplotlib is imported by the functions, never by this module: a `Figure` is drawn by the Agg backend with no
global figure registry or GUI backend to set up, and nothing to close afterwards. No torch either.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(**options: Any) -> Figure:
    """A matplotlib Figure (figsize=..., dpi=...) that savefig draws with Agg; nothing to close afterwards."""
    from matplotlib.figure import Figure

    return Figure(**options)


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for a notebook's display), trimmed to what it shows."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def png_img(png: bytes, title: str, style: str = "") -> str:
    """An HTML <img> embedding PNG bytes as base64, titled (escaped)."""
    encoded = base64.b64encode(png).decode("ascii")
    shown = html.escape(title, quote=True)
    return f"<img src='data:image/png;base64,{encoded}' alt='{shown}' title='{shown}' style='{style}'>"
