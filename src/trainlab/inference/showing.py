"""How a Predictor and its predictions show themselves: a Predictor in one line, a prediction as the served page
shows it (the picture, the input the model received, and the top-k bars)."""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

from trainlab.data.showing import class_names
from trainlab.figures import png_img

if TYPE_CHECKING:
    from trainlab.inference.predictor import Prediction, Predictor

SHOWN_PICTURE = 192  # pixels: the longest side of the picture as shown (a photo is shrunk to it)
SHOWN_INPUT = 112  # pixels: the model's input, enlarged to this without smoothing (28x28 becomes 4x)
BAR_WIDTH = 180  # pixels: a probability of 1.0
BAR_COLOUR = "#4c78a8"


def predictor_repr(predictor: Predictor) -> str:
    """One line: model, checkpoint, classes, the input the model takes and how pictures are made into it."""
    prep = predictor.preprocessing
    named = getattr(predictor, "source", None)  # the checkpoint's path, for a predictor loaded from one
    source = f" from {named}" if named and named != "the checkpoint" else ""
    scaling = "uint8 scaled to 0-1"
    if prep.mean is not None and prep.std is not None:
        scaling += f", normalized by mean {fmt(prep.mean)} std {fmt(prep.std)}"
    look = f" to match {prep.look.describe()}" if prep.look is not None else ""
    return (
        f"Predictor({predictor.model_name or type(predictor.model).__name__}{source}; "
        f"{class_names(predictor.classes)}; input {prep.channels}x{prep.height}x{prep.width} {scaling}; "
        f"pictures: input style auto (raw or photo){look}; tta {predictor.tta}; on {predictor.device})"
    )


def fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{value:.3f}" for value in values) + ")"


def prediction_repr(prediction: Prediction) -> str:
    """Prediction('Ankle boot', 0.97): the top class and its probability."""
    return f"Prediction({prediction.label!r}, {prediction.probability:.2f})"


def kept_picture(image: Any) -> Any:
    """What a prediction keeps of its picture to show: the picture, reduced by a whole factor (box averaging, a few
    ms) when it is over twice the shown size, so that a list of large photos is not held in memory."""
    factor = -(-max(image.size) // (2 * SHOWN_PICTURE))  # rounded up: the reduced picture is at most twice
    return image.reduce(factor) if factor >= 2 else image


def picture_png(picture: Any, side: int, enlarge: bool) -> bytes:
    """A PIL image or a uint8 (C, H, W) tensor as PNG bytes, its longest side `side` pixels (enlarged without
    smoothing when `enlarge`, else only ever shrunk)."""
    from PIL import Image

    if not isinstance(picture, Image.Image):
        pixels = picture.permute(1, 2, 0).numpy()
        picture = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    scale = side / max(picture.size)
    if enlarge or scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.NEAREST if enlarge else Image.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def prediction_html(prediction: Prediction) -> str:
    """The picture, the model's input (its size and the input style it went through) and the top-k bars."""
    panels = []
    if prediction.picture is not None:
        width, height = prediction.picture_size or prediction.picture.size
        caption = f"picture ({width}x{height})"
        panels.append(figure(png_img(picture_png(prediction.picture, SHOWN_PICTURE, False), caption), caption))
    if prediction.model_input is not None:
        height, width = prediction.model_input.shape[1:]
        style = f", {prediction.input_style}" if prediction.input_style else ""
        caption = f"model input ({width}x{height}{style})"
        image = png_img(picture_png(prediction.model_input, SHOWN_INPUT, True), caption, "image-rendering:pixelated")
        panels.append(figure(image, caption, prediction.input_reason))
    bars = "".join(bar(label, probability) for label, probability in prediction.top)
    heading = f"<b>{html.escape(prediction.label)}</b> {100 * prediction.probability:.1f}%"
    panels.append(f"<div>{heading}<table style='margin-top:6px'>{bars}</table></div>")
    return (
        "<div class='trainlab-prediction' style='display:flex;gap:16px;align-items:flex-start'>"
        + "".join(panels)
        + "</div>"
    )


def figure(image: str, caption: str, why: str | None = None) -> str:
    """An image with its caption below (and, on hovering, why)."""
    title = f" title='{html.escape(why, quote=True)}'" if why else ""
    return (
        f"<figure style='margin:0;text-align:center'>{image}"
        f"<figcaption style='font-size:smaller'{title}>{html.escape(caption)}</figcaption></figure>"
    )


def bar(label: str, probability: float) -> str:
    """One table row: the class, a bar as long as its probability, the percentage."""
    length = round(BAR_WIDTH * min(max(probability, 0.0), 1.0))
    return (
        f"<tr><td style='text-align:right'>{html.escape(label)}</td><td style='width:{BAR_WIDTH}px'>"
        f"<div style='width:{length}px;height:12px;background:{BAR_COLOUR}'></div></td>"
        f"<td>{100 * probability:.1f}%</td></tr>"
    )
