"""Images: decoded once into one uint8 tensor, fetched a batch at a time, augmented per batch on the device.

PIL decoding on every access (what a ``datasets.Image`` column does) would cost more than a small CIFAR net's
forward pass, so ``decode_images`` decodes each split once, in batches, into an (N, 3, H, W) uint8 tensor
(CIFAR-10's 50,000 training images take 150 MB). ``ImageDataset`` indexes it; its ``__getitems__`` (which
``torch.utils.data.DataLoader`` calls with a whole batch of indices) fetches a batch with one gather, and
``ImageCollator`` passes it on as uint8, a quarter of float32's bytes to pin and copy. ``ImageBatchTransform``
augments a whole batch at once with tensor ops (one gather for crop + flip, one ``grid_sample`` for the rotation),
each sample with its own random offset, flip and angle, then normalises. The ops are device-agnostic: used as a
collator it runs on the CPU; the training job (``lsr_hf.train``) loads with ``ImageCollator`` instead and runs
``ImageBatchTransform.transform`` on the batch once it is on the GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset as HFDataset
from datasets import Image
from PIL import Image as PILImage
from torch.utils.data import Dataset

from lsr_hf.data.items import StackedItems
from lsr_hf.data.load import IMAGE_COLUMN, LABEL_COLUMN

DECODE_BATCH_SIZE = 1024


def decode_images(
    ds: HFDataset, column: str = IMAGE_COLUMN, batch_size: int = DECODE_BATCH_SIZE, size: int | None = None
) -> torch.Tensor:
    """All images of ``ds[column]`` as one uint8 tensor (N, 3, H, W), converted to RGB, decoded in batches;
    with ``size``, each image is first resized (PIL, bilinear) to ``size`` × ``size``.

    Raises ``ValueError`` if the images do not all have the same size (and no ``size`` is given).
    """
    if size is not None:
        return _decode_resized(ds, column, size)
    images = ds.select_columns([column]).cast_column(column, Image(mode="RGB")).with_format("numpy")
    n = len(images)
    out: torch.Tensor | None = None
    for start in range(0, n, batch_size):
        batch = images[start : start + batch_size][column]
        if batch.dtype == object or batch.ndim != 4:  # numpy cannot stack images of different sizes
            sizes = sorted({tuple(im.shape[:2]) for im in batch})
            raise ValueError(f"images must all have the same size, found (height, width) {sizes[:5]}")
        if out is None:
            out = torch.empty((n, 3, *batch.shape[1:3]), dtype=torch.uint8)
        elif batch.shape[1:3] != out.shape[2:]:
            raise ValueError(
                f"images must all have the same size, found (height, width) {tuple(out.shape[2:])} "
                f"and {batch.shape[1:3]}"
            )
        out[start : start + len(batch)] = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    if out is None:
        raise ValueError("the dataset has no images")
    return out


def _decode_resized(ds: HFDataset, column: str, size: int) -> torch.Tensor:
    images = ds.select_columns([column]).cast_column(column, Image(mode="RGB"))
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8)
    for i, row in enumerate(images):
        picture = row[column].resize((size, size), PILImage.BILINEAR)
        out[i] = torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy()).permute(2, 0, 1)
    if len(images) == 0:
        raise ValueError("the dataset has no images")
    return out


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

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be a uint8 tensor (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.long)

    @classmethod
    def from_hf(
        cls, ds: HFDataset, column: str = IMAGE_COLUMN, label_column: str = LABEL_COLUMN, size: int | None = None
    ) -> ImageDataset:
        """Decodes ``ds`` (a split from ``load_raw_splits``) once (resized to ``size`` × ``size`` when given)."""
        labels = torch.as_tensor(np.asarray(ds.with_format("numpy")[label_column]), dtype=torch.long)
        return cls(decode_images(ds, column, size=size), labels)

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
