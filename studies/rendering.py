"""Rendering stored images for people: one frame as a JPEG or PNG, with the grey-scale
pipeline of PS3.3 C.11 (Modality LUT, then VOI window or LUT, then MONOCHROME1 inversion)
or the colour one (YBR to RGB, palette lookup). Used by DICOMweb rendered and thumbnail
resources (PS3.18 8.3.5, 10.4.1.1.3-4) and, later, the console's series thumbnails [STU-7]
and viewer [STU-8].

Isolation: compressed pixel data is decoded by C codecs that a crafted file can crash, so a
file not stored in a little endian native syntax is first converted to Explicit VR Little
Endian by the transcoding workers (``studies/transcoding.py``), which run in child
processes. What runs here only reads native pixel bytes with numpy, and Pillow only encodes
the 8-bit arrays this module built; neither touches the untrusted encoded stream.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studies.transcoding import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    TranscodeError,
    transcode_file,
)

JPEG = "image/jpeg"
PNG = "image/png"
MEDIA_TYPES = (JPEG, PNG)
DEFAULT_QUALITY = 90
THUMBNAIL_SIZE = (128, 128)
MAX_VIEWPORT = 8192
# VOI LUT Function (0028,1056) defined terms, PS3.3 C.11.2.1.3.
WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_READABLE_HERE = frozenset({IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN})


class RenderError(Exception):
    """The image cannot be rendered (no pixel data, undecodable, unknown frame)."""


class UndecodableImage(RenderError):
    """The pixel data is there but cannot be decoded (a codec failed or crashed)."""


class BadRenderParameter(ValueError):
    """A rendering parameter (window, viewport, quality) is malformed; says which and why."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class Window:
    """A VOI window: center, width and function (PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class Viewport:
    """PS3.18 8.3.5.1.3: the output size, and optionally the source region (``sx,sy,sw,sh``;
    a negative width or height flips the image along that axis)."""

    width: int
    height: int
    region: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = JPEG
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = DEFAULT_QUALITY


# --- Parameters ----------------------------------------------------------------------------


def _number(parameter: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRenderParameter(parameter, f"{text!r} is not a number.") from None
    if not math.isfinite(value):
        raise BadRenderParameter(parameter, f"{text!r} is not a finite number.")
    return value


def parse_window(text: str) -> Window:
    """``center,width[,function]`` (PS3.18 8.3.5.1.4); the width must be at least 1."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3):
        raise BadRenderParameter("window", "Expected center,width[,function].")
    center, width = _number("window", parts[0]), _number("window", parts[1])
    function = parts[2].upper() if len(parts) == 3 else "LINEAR"
    if function not in WINDOW_FUNCTIONS:
        raise BadRenderParameter(
            "window", f"Unknown function {parts[2]!r}: use {', '.join(WINDOW_FUNCTIONS)}."
        )
    # PS3.3 C.11.2.1.2.1: LINEAR needs a width of at least 1; C.11.2.1.3: the others > 0.
    if (function == "LINEAR" and width < 1) or width <= 0:
        raise BadRenderParameter(
            "window", "The width must be at least 1 (LINEAR) or above 0 (LINEAR_EXACT, SIGMOID)."
        )
    return Window(center, width, function)


def _integer(parameter: str, text: str) -> int:
    value = _number(parameter, text)
    if value != int(value):
        raise BadRenderParameter(parameter, f"{text!r} is not an integer.")
    return int(value)


def parse_viewport(text: str) -> Viewport:
    """``vw,vh`` or ``vw,vh,sx,sy,sw,sh`` (PS3.18 8.3.5.1.3)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 6):
        raise BadRenderParameter("viewport", "Expected vw,vh or vw,vh,sx,sy,sw,sh.")
    width, height = _integer("viewport", parts[0]), _integer("viewport", parts[1])
    if not (1 <= width <= MAX_VIEWPORT and 1 <= height <= MAX_VIEWPORT):
        raise BadRenderParameter(
            "viewport", f"The width and height must be between 1 and {MAX_VIEWPORT}."
        )
    region = None
    if len(parts) == 6:
        sx, sy, sw, sh = (_integer("viewport", part) for part in parts[2:])
        if sx < 0 or sy < 0 or sw == 0 or sh == 0:
            raise BadRenderParameter(
                "viewport", "The region needs sx, sy >= 0 and a non-zero sw and sh."
            )
        region = (sx, sy, sw, sh)
    return Viewport(width, height, region)


def parse_quality(text: str) -> int:
    quality = _integer("quality", text)
    if not 1 <= quality <= 100:
        raise BadRenderParameter("quality", "The quality must be between 1 and 100.")
    return quality


# --- Decoding in isolation -----------------------------------------------------------------


def transcoded_copy(source: Path, target: str, folder: Path) -> Path:
    """`source` converted to `target` by the worker pool, in a new file in `folder` that the
    caller deletes. Raises TranscodeError."""
    handle, name = tempfile.mkstemp(dir=folder, prefix="transcoded-", suffix=".dcm")
    os.close(handle)
    try:
        transcode_file(source, target, Path(name))
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


# --- The pixel pipeline --------------------------------------------------------------------


def window_linear(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT) and C.11.2.1.3.1 (SIGMOID),
    to the output range 0..255 as floats."""
    c, w = window.center, window.width
    x = values.astype(np.float64, copy=False)
    if window.function == "SIGMOID":
        return 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if window.function == "LINEAR_EXACT":
        scaled = ((x - c) / w + 0.5) * 255.0
        low, high = c - w / 2, c + w / 2
    else:
        scaled = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0 if w > 1 else np.zeros_like(x)
        low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    return np.where(x <= low, 0.0, np.where(x > high, 255.0, scaled))


def _first(value) -> float | None:
    """The first value of a possibly multi-valued DS element, or None."""
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def stored_window(dataset) -> Window | None:
    """The first Window Center / Width of the dataset (PS3.3 C.11.2.1.2), with its VOI LUT
    Function, or None."""
    center = _first(dataset.get("WindowCenter"))
    width = _first(dataset.get("WindowWidth"))
    if center is None or width is None or width < 1:
        return None
    function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    return Window(center, width, function if function in WINDOW_FUNCTIONS else "LINEAR")


def _greyscale(pixels: np.ndarray, dataset, window: Window | None) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(pixels, dataset).astype(np.float64, copy=False)
    window = window or stored_window(dataset)
    if window is not None:
        shown = window_linear(values, window)
    elif "VOILUTSequence" in dataset:
        lut = apply_voi_lut(values.astype(np.int64), dataset).astype(np.float64)
        low, high = float(lut.min()), float(lut.max())
        shown = (lut - low) * (255.0 / (high - low)) if high > low else np.zeros_like(lut)
    else:
        # No window anywhere: the full range of the data (LINEAR_EXACT from min to max).
        low, high = float(values.min()), float(values.max())
        shown = (
            window_linear(values, Window((low + high) / 2, high - low, "LINEAR_EXACT"))
            if high > low
            else np.zeros_like(values)
        )
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        shown = 255.0 - shown
    return np.clip(np.rint(shown), 0, 255).astype(np.uint8)


def _colour(pixels: np.ndarray, dataset) -> np.ndarray:
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(pixels, dataset)
        bits = 16 if rgb.dtype.itemsize > 1 else 8
        descriptor = dataset.get("RedPaletteColorLookupTableDescriptor")
        if descriptor is not None and int(descriptor[2]) in (8, 16):
            bits = int(descriptor[2])
        return (rgb >> (bits - 8)).astype(np.uint8) if bits > 8 else rgb.astype(np.uint8)
    bits_stored = int(dataset.get("BitsStored", 8) or 8)
    if bits_stored > 8:
        return (pixels >> (bits_stored - 8)).astype(np.uint8)
    return pixels.astype(np.uint8)


def _apply_viewport(image, viewport: Viewport | None):
    from PIL import Image

    if viewport is None:
        return image
    if viewport.region is not None:
        sx, sy, sw, sh = viewport.region
        image = image.crop((sx, sy, sx + abs(sw), sy + abs(sh)))
        if sw < 0:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    # Fit inside the viewport, keeping the aspect ratio (PS3.18 8.3.5.1.3).
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS) if size != image.size else image


def render_pixels(pixels: np.ndarray, dataset, options: RenderOptions) -> bytes:
    """Encode one frame's decoded pixels (as pydicom gives them: RGB for colour) as the
    requested image."""
    from PIL import Image

    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if samples == 1 and photometric != "PALETTE COLOR":
        image = Image.fromarray(_greyscale(pixels, dataset, options.window), mode="L")
    else:
        image = Image.fromarray(_colour(pixels, dataset), mode="RGB")
    image = _apply_viewport(image, options.viewport)
    output = io.BytesIO()
    if options.media_type == PNG:
        image.save(output, format="PNG")
    else:
        image.save(output, format="JPEG", quality=options.quality)
    return output.getvalue()


def render_file(
    path: Path, stored_syntax: str, frame_number: int, options: RenderOptions, temp: Path
) -> bytes:
    """Render frame `frame_number` (1-based) of a stored file. Files in a compressed, big
    endian or deflated syntax are converted to Explicit VR Little Endian by the isolated
    workers first; `temp` is where that copy lives while it is read."""
    copy = None
    if stored_syntax not in _READABLE_HERE:
        try:
            copy = transcoded_copy(path, EXPLICIT_VR_LITTLE_ENDIAN, temp)
        except TranscodeError as exc:
            raise UndecodableImage(f"The pixel data cannot be decoded: {exc}") from exc
    try:
        return _render_native(copy or path, frame_number, options)
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)


def _render_native(path: Path, frame_number: int, options: RenderOptions) -> bytes:
    import pydicom
    from pydicom.pixels import pixel_array

    dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    if "Rows" not in dataset or "BitsAllocated" not in dataset:
        raise RenderError("This instance has no image pixel data.")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if not 1 <= frame_number <= frames:
        raise RenderError(f"Frame {frame_number} does not exist: the instance has {frames}.")
    try:
        # Reads only this frame's bytes; YBR is converted to RGB.
        pixels = pixel_array(path, index=frame_number - 1)
    except Exception as exc:
        raise UndecodableImage(f"The pixel data cannot be read: {exc}") from exc
    return render_pixels(pixels, dataset, options)
