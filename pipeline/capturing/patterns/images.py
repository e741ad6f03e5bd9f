"""Image folder patterns: every ``.png``/``.jpg``/``.jpeg`` file directly inside the folder,
sorted by file name (a stable order, recorded in run.json), read lazily batch by batch with Pillow, converted
to grayscale for an input of shape (H, W) or (H, W, 1) and to RGB for (H, W, 3), resized to
(H, W) with bilinear filtering and scaled from 0..255 to [0, 1] float32. Other files are
skipped; a folder without images is an error.

``resize``: ``squash`` stretches each image to (H, W); ``crop`` scales it (keeping its aspect
ratio) until it covers (H, W), its shorter side to the target size for a square input, then
cuts the centre, as vision libraries do (torchvision's ``Resize`` + ``CenterCrop``). The
images read are what is shown and kept with the run; with ``preprocess``
(``pipeline.capturing.patterns.preprocess``) the model is fed that function of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...errors import PatternError
from .preprocess import Preprocess
from .source import PatternSource

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` in stable (sorted by name) order."""
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        found = ", ".join(p.name for p in files[:5]) + (" ..." if len(files) > 5 else "")
        raise PatternError(
            f"pattern folder {folder} holds no PNG/JPEG images (found: {found or 'nothing'}); "
            "expected a folder of .png/.jpg files, or give an .npy/.npz file"
        )
    skipped = len(files) - len(images)
    if skipped:
        log.info("pattern folder %s: skipping %d file(s) that are not images", folder, skipped)
    return images


def _image_mode(shape: tuple[int | None, ...], spec: str) -> tuple[int, int, str, bool]:
    """(H, W, Pillow mode, keep a channel axis) for an input of per-pattern ``shape``."""
    if len(shape) == 2:
        h, w, c = shape[0], shape[1], None
    elif len(shape) == 3:
        h, w, c = shape
    else:
        raise PatternError(
            f"pattern spec {spec!r}: images feed an input of shape (H, W) or (H, W, C); the "
            f"model input expects {tuple(shape)}"
        )
    if h is None or w is None:
        raise PatternError(
            f"pattern spec {spec!r}: the model input shape {tuple(shape)} has an unknown "
            "height or width; images need a fixed size to be resized to"
        )
    modes = {None: "L", 1: "L", 3: "RGB", 4: "RGBA"}
    if c not in modes:
        raise PatternError(
            f"pattern spec {spec!r}: images have 1, 3 or 4 channels; the model input expects "
            f"{c} channels {tuple(shape)}"
        )
    return int(h), int(w), modes[c], c is not None


def crop_box(size: tuple[int, int], h: int, w: int) -> tuple[tuple[int, int], tuple[int, ...]]:
    """For an image of ``size`` (width, height): the size (width, height) to scale it to so
    that it covers (h, w) with its aspect ratio kept, and the centred (left, top, right,
    bottom) box of (h, w) to cut from it (offsets rounded as torchvision's ``center_crop``)."""
    iw, ih = size
    scale = max(h / ih, w / iw)
    sw, sh = max(w, round(iw * scale)), max(h, round(ih * scale))
    left, top = int(round((sw - w) / 2.0)), int(round((sh - h) / 2.0))
    return (sw, sh), (left, top, left + w, top + h)


def read_image(path: Path, h: int, w: int, mode: str, resize: str = "squash") -> np.ndarray:
    """One image as float32 in [0, 1], shape (h, w) or (h, w, channels), brought to (h, w)
    as ``resize`` says (``squash`` or ``crop``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if resize == "crop":
                scaled, box = crop_box(img.size, h, w)
                if img.size != scaled:
                    img = img.resize(scaled, Image.Resampling.BILINEAR)
                img = img.crop(box)
            elif img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise PatternError(
            f"image {path} cannot be read ({exc}); expected a PNG or JPEG file, remove or "
            "replace it"
        ) from exc
    return arr


def image_folder(
    folder: Path,
    shape: tuple[int | None, ...],
    spec: str,
    resize: str = "squash",
    preprocess: Preprocess | None = None,
) -> PatternSource:
    """A lazy source over the images of ``folder`` for one input of per-pattern ``shape``,
    brought to its size as ``resize`` says; the model is fed ``preprocess`` of them."""
    h, w, mode, channel_axis = _image_mode(shape, spec)
    files = image_files(folder)

    def read(first: int, size: int) -> list[np.ndarray]:
        batch = np.stack([read_image(p, h, w, mode, resize) for p in files[first : first + size]])
        if channel_axis and batch.ndim == 3:
            batch = batch[..., None]
        return [batch]

    out_shape = (h, w, 1 if mode == "L" else len(mode)) if channel_axis else (h, w)
    prepare = None
    if preprocess is not None:
        preprocess.check(out_shape, spec)

        def prepare(batch: list[np.ndarray]) -> list[np.ndarray]:
            return [preprocess(batch[0])]

    return PatternSource(
        spec,
        len(files),
        [out_shape],
        origin=str(folder),
        kind="images",
        names=[p.name for p in files],
        reader=read,
        prepare=prepare,
    )
