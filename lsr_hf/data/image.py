"""Images: decoded once into one uint8 tensor, fetched a batch at a time, augmented per batch on the device.

PIL decoding on every access (what a ``datasets.Image`` column does) would cost more than a small CIFAR net's
forward pass, so ``decode_images`` decodes each split once, in batches, into an (N, 3, H, W) uint8 tensor
(CIFAR-10's 50,000 training images take 150 MB). ``ImageDataset`` indexes it; its ``__getitems__`` (which
``torch.utils.data.DataLoader`` calls with a whole batch of indices) fetches a batch with one gather, and
``ImageCollator`` passes it on as uint8, a quarter of float32's bytes to pin and copy. ``ImageBatchTransform``
augments a whole batch at once with tensor ops (one gather for crop + flip, one ``grid_sample`` for the rotation),
each sample with its own random offset, flip and angle, then normalises. The ops are device-agnostic: used as a
collator it runs on the CPU; the training job (``lsr_hf.job.train``) loads with ``ImageCollator`` instead and runs
``ImageBatchTransform.transform`` on the batch once it is on the GPU.

Decoding is PIL's, straight from the encoded bytes: greyscale, palette, CMYK and RGBA images are converted to RGB,
an image of another size is resized to the split's size, and one that does not decode (garbage bytes, a truncated or
empty file) is skipped and counted like an undecodable audio file (``lsr_hf.data.quality``).
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset as HFDataset
from PIL import Image as PILImage
from torch.utils.data import Dataset

from lsr_hf.data.items import StackedItems
from lsr_hf.data.load import IMAGE_COLUMN, LABEL_COLUMN, encoded_files
from lsr_hf.data.quality import DEFAULT_MAX_SKIPPED_FRACTION, check_skipped, skip_note

logger = logging.getLogger(__name__)

DECODE_BATCH_SIZE = 1024
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_RELEASED = np.empty((0, 0, 3), dtype=np.uint8)


def read_image(data: bytes | None, path: str | None) -> np.ndarray:
    """One encoded image (its bytes, or else its path) as a uint8 RGB array (H, W, 3).

    Other modes are converted as torchvision's image-folder loader does (``PIL.Image.convert("RGB")``: grey is
    repeated, a palette looked up, CMYK converted, an alpha channel dropped); 16-bit grey is scaled to 8 bits.
    Raises whatever PIL raises for bytes it cannot decode (garbage, a truncated file, an empty one), and
    ``ValueError`` for an image without pixels.
    """
    if data is None and path is None:
        raise ValueError("neither bytes nor a path")
    with PILImage.open(io.BytesIO(data) if data is not None else path) as image:
        image.load()  # decodes now: a truncated file fails here, not later
        if image.width == 0 or image.height == 0:
            raise ValueError(f"zero-size image ({image.width}x{image.height})")
        if image.mode in SIXTEEN_BIT_MODES:
            grey = np.asarray(image, dtype=np.float64)
            top = 65535.0 if grey.max(initial=0.0) > 255 else 255.0
            image = PILImage.fromarray(np.clip(np.rint(grey * (255.0 / top)), 0, 255).astype(np.uint8))
        elif image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")  # PIL's advice for palette images with transparency
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


@dataclass
class DecodedImages:
    """The decodable images of one split: ``images`` uint8 (N, 3, H, W), ``rows`` the row of ``ds`` each came from,
    ``skipped`` one note per undecodable row (see ``lsr_hf.data.quality.skip_note``), ``resized`` how many images
    of another size were resized to (H, W)."""

    images: torch.Tensor
    rows: np.ndarray
    skipped: list[str] = field(default_factory=list)
    resized: int = 0


def decode_images(
    ds: HFDataset,
    column: str = IMAGE_COLUMN,
    batch_size: int = DECODE_BATCH_SIZE,
    size: tuple[int, int] | None = None,
    split: str = "train",
    max_skipped_fraction: float = DEFAULT_MAX_SKIPPED_FRACTION,
) -> DecodedImages:
    """All images of ``ds[column]``, decoded once (``read_image``) into one uint8 tensor (N, 3, H, W).

    ``ds[column]`` holds encoded images as {bytes, path} structs (``datasets.Image`` storage) or binary; it is read
    through the Arrow table, never through ``datasets``' own decoding. A row that does not decode is skipped and
    noted; more than ``max_skipped_fraction`` of them (or all) raises ``DataError`` (``check_skipped``). Images are
    resized (bilinear) to ``size`` (height, width) when given, else to the split's most common size, and the
    resized ones are logged.
    """
    table_view = ds.select_columns([column]).with_format("arrow")
    arrays: list[np.ndarray] = []
    rows: list[int] = []
    skipped: list[str] = []
    for start in range(0, len(ds), batch_size):
        data, paths = encoded_files(table_view[start : start + batch_size].column(column))
        for i, (blob, path) in enumerate(zip(data, paths), start=start):
            try:
                arrays.append(read_image(blob, path))
            except MemoryError:
                raise
            except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for undecodable bytes
                skipped.append(skip_note(i, path, err))
                continue
            rows.append(i)
    check_skipped(split, "images", skipped, len(ds), max_skipped_fraction)

    if size is None:
        size = Counter(a.shape[:2] for a in arrays).most_common(1)[0][0]
    h, w = size
    out = torch.empty((len(arrays), 3, h, w), dtype=torch.uint8)
    resized: list[str] = []
    for k, array in enumerate(arrays):
        if array.shape[:2] != (h, w):
            resized.append(f"row {rows[k]} ({array.shape[0]}x{array.shape[1]})")
            array = np.asarray(PILImage.fromarray(array).resize((w, h), PILImage.Resampling.BILINEAR))
        out[k].numpy()[...] = array.transpose(2, 0, 1)
        arrays[k] = _RELEASED  # free each image once copied: peak memory ~2x the decoded split
    if resized:
        logger.warning(
            "the %s split: resized %d image(s) of another size to %dx%d: %s%s",
            split, len(resized), h, w, ", ".join(resized[:20]), ", ..." if len(resized) > 20 else "",
        )  # fmt: skip
    return DecodedImages(images=out, rows=np.asarray(rows, dtype=np.int64), skipped=skipped, resized=len(resized))


def channel_stats(images: torch.Tensor, batch_size: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of uint8 images (N, 3, H, W) on the [0, 1] scale, over all pixels (population std,
    accumulated in float64 batch by batch). A channel with std 0 gets std 1 (it would otherwise divide by 0)."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


class ImageDataset(Dataset):
    """Decoded images and their labels, in memory. Item ``i`` is
    ``{"pixel_values": uint8 (3, H, W), "labels": int}``; ``ImageBatchTransform`` turns a list of items into a
    normalised float batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, skipped: Sequence[str] = ()) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be a uint8 tensor (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.long)
        self.skipped = list(skipped)  # notes on the rows of the source split that did not decode

    @classmethod
    def from_hf(
        cls,
        ds: HFDataset,
        column: str = IMAGE_COLUMN,
        label_column: str = LABEL_COLUMN,
        size: tuple[int, int] | None = None,
        split: str = "train",
        max_skipped_fraction: float = DEFAULT_MAX_SKIPPED_FRACTION,
    ) -> ImageDataset:
        """Decodes ``ds`` (a split from ``load_raw_splits``) once; see ``decode_images`` for the other arguments."""
        decoded = decode_images(ds, column, size=size, split=split, max_skipped_fraction=max_skipped_fraction)
        labels = np.asarray(ds.with_format("numpy")[label_column])[decoded.rows]
        return cls(decoded.images, torch.as_tensor(labels, dtype=torch.long), decoded.skipped)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"pixel_values": self.images[index], "labels": int(self.labels[index])}

    def __getitems__(self, indices: Sequence[int]) -> StackedItems:
        """A batch of items with one gather (``DataLoader`` calls this instead of ``__getitem__`` per index)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return StackedItems("pixel_values", self.images[index], self.labels[index])


def stack_items(features: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (B, 3, H, W), int64 labels (B,)) of a list of ``ImageDataset`` items or a ``StackedItems``."""
    if isinstance(features, StackedItems):
        return features.inputs, features.labels.to(torch.long)
    pixels = torch.stack([f["pixel_values"] for f in features])
    labels = torch.tensor([int(f["labels"]) for f in features], dtype=torch.long)
    return pixels, labels


class ImageCollator:
    """Collator for ``ImageDataset`` items that leaves the pixels alone: ``{"pixel_values": uint8 (B, 3, H, W),
    "labels": int64 (B,)}``. The augmentation and normalisation (``ImageBatchTransform.transform``) then run on the
    device the batch is moved to, as the training job does."""

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        pixels, labels = stack_items(features)
        return {"pixel_values": pixels, "labels": labels}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ------------------------------------------------------------------------------------------------ augmentation


def crop_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    """Per-sample crops of the zero-padded images, then per-sample horizontal flips, in one gather.

    Sample ``b`` of the result is the H×W window at (``top[b]``, ``left[b]``) of ``images[b]`` zero-padded by
    ``padding`` pixels on each side, mirrored left-right where ``flip[b]``. Any dtype, any device.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding)) if padding else images
    wp = padded.shape[3]
    dev = images.device
    rows = top.to(dev)[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = torch.arange(w, device=dev).expand(b, w)
    cols = torch.where(flip.to(dev)[:, None], cols.flip(1), cols) + left.to(dev)[:, None]  # (B, W)
    # one gather over the flattened padded plane (several times faster than 4-D advanced indexing)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, -1).gather(2, flat).view(b, c, h, w)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotates each float image (B, C, H, W) about its centre by its own angle (counter-clockwise, degrees),
    nearest-neighbour, filling with 0 (torchvision's ``rotate`` defaults)."""
    _, _, h, w = images.shape
    theta = torch.deg2rad(degrees.to(device=images.device, dtype=torch.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    # output pixel (x, y) (normalised to [-1, 1] per axis) samples the input at the inverse rotation of its
    # pixel offset from the centre; the h/w factors undo the per-axis normalisation of non-square images
    matrix = torch.stack(
        [
            torch.stack([cos, -sin * h / w, torch.zeros_like(cos)], dim=1),
            torch.stack([sin * w / h, cos, torch.zeros_like(cos)], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    grid = F.affine_grid(matrix, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="nearest", padding_mode="zeros", align_corners=False)


class ImageBatchTransform:
    """Collator for ``ImageDataset`` items: stacks them and applies DESIGN.md §4's augmentation batched.

    ``train=True``: random crop with ``padding`` pixels of zero padding (offsets uniform per sample), horizontal
    flip with p = 0.5 (``flip``), rotation by an angle uniform in [-``rotation_degrees``, ``rotation_degrees``]
    (0 disables it; zero fill, nearest neighbour) — the order and defaults of torchvision's ``RandomCrop``,
    ``RandomHorizontalFlip``, ``RandomRotation`` — then scaling to [0, 1] and normalising with ``mean``/``std``.
    ``train=False`` only scales and normalises. Randomness comes from torch's global generator (seeded per
    DataLoader worker by torch). Returns ``{"pixel_values": float32 (B, 3, H, W), "labels": int64 (B,)}``.
    """

    def __init__(
        self,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        padding: int = 4,
        flip: bool = True,
        rotation_degrees: float = 0.0,
    ) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std must have 3 values (RGB), got {list(mean)!r} and {list(std)!r}")
        if min(std) <= 0:
            raise ValueError(f"std must be > 0, got {list(std)!r}")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
        if not 0.0 <= rotation_degrees <= 180.0:
            raise ValueError(f"rotation_degrees must be in [0, 180], got {rotation_degrees!r}")
        self.train = bool(train)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.padding = padding
        self.flip = bool(flip)
        self.rotation_degrees = float(rotation_degrees)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(train={self.train}, mean={self.mean.flatten().tolist()}, "
            f"std={self.std.flatten().tolist()}, padding={self.padding}, flip={self.flip}, "
            f"rotation_degrees={self.rotation_degrees})"
        )

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        pixels, labels = stack_items(features)
        return {"pixel_values": self.transform(pixels), "labels": labels}

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> normalised float32 (B, 3, H, W), augmented when ``train``."""
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 tensor (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        b, dev = images.shape[0], images.device
        if self.train and (self.padding or self.flip):
            top = torch.randint(0, 2 * self.padding + 1, (b,), device=dev)
            left = torch.randint(0, 2 * self.padding + 1, (b,), device=dev)
            flip = torch.rand(b, device=dev) < 0.5 if self.flip else torch.zeros(b, dtype=torch.bool, device=dev)
            images = crop_flip(images, top, left, flip, self.padding)
        x = images.to(torch.float32).div_(255.0)
        if self.train and self.rotation_degrees > 0:
            angles = (torch.rand(b, device=dev) * 2.0 - 1.0) * self.rotation_degrees
            x = rotate(x, angles)
        return x.sub_(self.mean.to(dev)).div_(self.std.to(dev))
