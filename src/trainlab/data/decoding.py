"""Image files to model input: the one decoding path shared by training data, `predict` and the server."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from trainlab.config import MAX_IMAGE_PIXELS
from trainlab.data.input_styles import INPUT_STYLES, StyleChoice, choose_style, photo_input
from trainlab.data.pictures import picture_image
from trainlab.data.plain_png import plain_png_image
from trainlab.errors import DataError
from trainlab.fileio import NotRegularFile, open_regular
from trainlab.validation import check_choice

GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # more than 8 bits a pixel: scaled to 0-255 first
TIFF_BITS_PER_SAMPLE, TIFF_SAMPLE_FORMAT, TIFF_SIGNED = 258, 339, 2


ImageSource = str | os.PathLike | bytes  # a file name, or an image file's bytes (an upload)


class NotAnImage(DataError):
    """The bytes are no image format PIL knows (or there are none)."""


class DamagedImage(DataError):
    """A known image format whose pixel data is truncated or corrupt."""


class ImageTooLarge(DataError):
    """More pixels than MAX_IMAGE_PIXELS: refused as a likely decompression bomb before its pixels are decoded."""


class ImageShape(Protocol):
    """Anything that names the model's input: Preprocessing does (and says how the training images look)."""

    channels: int
    height: int
    width: int


@dataclass
class InputImage:
    """A picture as the model receives it, the style it went through and why, and the decoded original."""

    tensor: torch.Tensor  # uint8 (C, H, W) in the model's input shape
    choice: StyleChoice
    original: Any  # PIL image, after EXIF rotation and channel conversion, before the style


def source_name(source: ImageSource, name: str | None = None) -> str:
    """What messages call an image: `name`, else its path, else "image" for bytes or a picture (never their repr)."""
    return name or (str(source) if isinstance(source, str | os.PathLike) else "image")


def open_image(source: ImageSource, name: str | None = None) -> Any:
    """A lazily opened PIL image (header read, pixels not yet decoded), size-checked; errors name the file
    (or `name`, for bytes). A path is read only when it is a regular file (a FIFO would block forever)."""
    from PIL import Image

    name = source_name(source, name)
    if isinstance(source, bytes) and not source:
        raise NotAnImage(f"{name}: is empty (0 bytes), not an image")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else open_regular(source)
    except FileNotFoundError:
        raise DataError(f"{name}: no such image file") from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a folder, not an image file") from None
    except NotRegularFile as exc:
        raise NotAnImage(f"{name}: {exc.strerror}; give an image file") from None
    except OSError as exc:
        raise NotAnImage(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        with warnings.catch_warnings():
            # over MAX_IMAGE_PIXELS, refused below in one line: Pillow's own warning would be a second one
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(handle)
    except BaseException as exc:
        handle.close()
        failure = _open_failure(exc, name)
        if failure is exc:
            raise
        raise failure from None
    image._exclusive_fp = True  # the handle is ours: PIL closes it as it closes a file it opened by name
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageTooLarge(f"{name}: image is larger than {MAX_IMAGE_PIXELS} pixels ({width}x{height}); refused")
    if width == 0 or height == 0:
        image.close()
        raise DamagedImage(f"{name}: image has no pixels ({width}x{height})")
    return image


def _open_failure(exc: BaseException, name: str) -> BaseException:
    """Image.open's failure as the DataError naming the file; other exceptions (KeyboardInterrupt) as they are."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, Image.DecompressionBombError):
        return ImageTooLarge(f"{name}: image is larger than {MAX_IMAGE_PIXELS} pixels; refused")
    if isinstance(exc, UnidentifiedImageError):
        return NotAnImage(f"{name}: cannot be read as an image (not a format PIL knows)")
    if isinstance(exc, OSError | ValueError):
        return NotAnImage(f"{name}: cannot be read as an image ({exc})")
    return exc


def read_header(path: str | os.PathLike) -> tuple[int, int, int]:
    """(channels, height, width) of an image file from its header alone: 1 for gray modes, else 3."""
    image = open_image(path)
    with image:
        width, height = image.size
        mode = image.mode
        if mode == "P":
            mode = image.palette.mode if image.palette is not None else "RGB"
    return (1 if mode in GRAY_MODES else 3), height, width


def load_image(path: str | os.PathLike, preprocessing: ImageShape, style: str = "raw") -> torch.Tensor:
    """An image file as uint8 (C, H, W) in the model's input shape, through an input style (see input_styles)."""
    return read_input(path, preprocessing, style).tensor


def read_input(
    source: ImageSource | Any, preprocessing: ImageShape, style: str = "raw", name: str | None = None
) -> InputImage:
    """An image file (a path, or its bytes named `name` in messages) or a picture in memory (a PIL image, array
    or tensor: data.pictures) as the model receives it: decoded, channels converted, then `style` (auto, photo
    or raw).

    Transparent pixels become black and EXIF rotation is applied. raw resizes the whole frame and keeps its
    polarity; photo trims, fits, centres and matches the training images' look (preprocessing.look); auto picks
    one of the two for this picture.
    """
    check_choice("input style", style, INPUT_STYLES)
    image = decode(source, "L" if preprocessing.channels == 1 else "RGB", name)
    look = getattr(preprocessing, "look", None)
    height, width = preprocessing.height, preprocessing.width
    gray = pixels = None
    if style != "raw" and image.mode == "L":
        pixels = np.array(image)  # one conversion from PIL for both the style's levels and raw's tensor
        gray = pixels.astype(np.float32)
    elif style != "raw":
        gray = np.asarray(image.convert("L"), dtype=np.float32)
    choice = choose_style(gray, height, width, look) if style == "auto" else StyleChoice(style, "asked for")
    resize = getattr(preprocessing, "resize", None)
    if style == "auto" and resize is not None:  # pretrained weights take every picture through their own crop
        choice = StyleChoice("raw", "resized and centre-cropped as the pretrained weights' own transforms do")
    if choice.style == "photo":
        tensor = photo_input(image, gray, preprocessing.channels, height, width, look)
    else:
        pixels = np.array(image) if pixels is None else pixels  # a copy: torch wants a writable array
        tensor = torch.from_numpy(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1).copy())
        if resize is not None or image.size != (width, height):
            tensor = resized(tensor, height, width, resize)
    return InputImage(tensor, choice, image)


def resized(tensor: torch.Tensor, height: int, width: int, shorter_side: int | None = None) -> torch.Tensor:
    """uint8 (C, H, W) resized (antialiased) to height x width, or, for pretrained weights, its shorter side to
    `shorter_side` and then the centre cropped to height x width."""
    # imported here: torchvision's import (a second or more: it pulls in torch._dynamo) is for pictures that need
    # resizing; a folder of images at the model's size never pays it
    from torchvision.transforms.v2 import functional as F

    if shorter_side is not None:
        return F.center_crop(F.resize(tensor, shorter_side, antialias=True), [height, width])
    return F.resize(tensor, [height, width], antialias=True)


def decode(source: ImageSource | Any, mode: str, name: str | None = None) -> Any:
    """An image file (or its bytes), or a picture in memory (a PIL image, array or tensor: data.pictures), as a
    PIL image in `mode` (L or RGB): EXIF rotation applied, transparency made black."""
    from PIL import Image, ImageOps

    plain = plain_png_image(source, mode) if isinstance(source, bytes) else None  # a server's usual upload
    if plain is not None:
        return plain
    name = source_name(source, name)
    if isinstance(source, str | os.PathLike | bytes):
        image = open_image(source, name)
    else:  # a copy: the caller's own picture is neither changed nor closed
        image = picture_image(source, name).copy()
    try:
        with image:
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode in WIDE_MODES:
                image = to_8_bit(image)
            if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (0, 0, 0, 255))  # transparent -> black, as in the data
                image = Image.alpha_composite(background, image)
            return image.convert(mode)
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"{name}: image is larger than {MAX_IMAGE_PIXELS} pixels; refused") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt pixel data
        raise DamagedImage(f"{name}: cannot be read as an image ({exc})") from None


def to_8_bit(image: Any) -> Any:
    """A 16-bit, 32-bit or float gray image as mode L, scaled by its range (PIL's own convert clips at 255).

    16-bit: 0-65535 -> 0-255. Mode I (32-bit integers): by the bit depth the TIFF header gives, else by the
    values: up to 255 as they are, up to 65535 as 16-bit, else as 32-bit; negatives become 0. Float (mode F):
    0.0-1.0 -> 0-255 when no value is above 1, else the values are taken as 0-255 and clipped to it.
    """
    import numpy as np
    from PIL import Image

    values = np.asarray(image)
    if image.mode == "F":
        pixels = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if pixels.size and pixels.max() <= 1.0:
            pixels = pixels * 255
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    pixels = np.clip(values.astype(np.int64), 0, None)
    if image.mode == "I":
        top = wide_range(image, int(pixels.max()) if pixels.size else 0)
    else:
        top = 65535
    if top > 255:
        pixels = (pixels * 255 + top // 2) // top  # rounded: 32768 of 65535 -> 128
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def wide_range(image: Any, largest: int) -> int:
    """The largest value a mode-I image can hold: from its TIFF bit depth when given, else from its values."""
    tags = getattr(image, "tag_v2", None)
    if tags is not None and TIFF_BITS_PER_SAMPLE in tags:
        bits = tags[TIFF_BITS_PER_SAMPLE]
        bits = int(bits[0] if isinstance(bits, tuple) else bits)
        sample_format = tags.get(TIFF_SAMPLE_FORMAT, 1)
        signed = (sample_format[0] if isinstance(sample_format, tuple) else sample_format) == TIFF_SIGNED
        if 8 < bits <= 32:
            return 2 ** (bits - 1 if signed else bits) - 1
    if largest <= 255:
        return 255
    return 65535 if largest <= 65535 else 2**31 - 1  # mode I holds signed 32-bit integers


def import_decoders(resizing: bool = True) -> None:
    """Import what load_image uses: PIL, and torchvision (seconds to import: it pulls in torch._dynamo) when
    pictures are to be resized; without it, `resized` imports torchvision when a picture first needs it."""
    import PIL.Image  # noqa: F401
    import PIL.ImageOps  # noqa: F401

    if resizing:
        import torchvision.transforms.v2.functional  # noqa: F401
