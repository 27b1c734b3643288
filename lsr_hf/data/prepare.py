"""``prepare_data``: the one entry point the training job calls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from lsr_hf.data.audio import AudioClipDataset, AudioCollator, AudioSegmentDataset, decode_audio
from lsr_hf.data.config import DataConfig
from lsr_hf.data.image import ImageBatchTransform, ImageDataset
from lsr_hf.data.load import load_raw_splits
from lsr_hf.data.specs import get_spec

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Decoded splits ready for ``transformers.Trainer`` (with ``remove_unused_columns=False``: the items are
    plain dicts of the model inputs and ``labels``, which Trainer's column filter does not know how to read).

    Images: items ``{"pixel_values": uint8 (3, H, W), "labels": int}``; ``train_collator`` augments and
    normalises, ``eval_collator`` only normalises, both give ``pixel_values`` float32 (B, 3, H, W).
    Audio: training items are segments ``{"input_values": (T,)}``, evaluation items whole clips
    ``{"input_values": (S, T)}`` (average the S segment logits); both collators just stack.
    ``num_skipped`` counts undecodable audio files (over all splits); ``sample_rate`` is None for images.
    """

    train: Dataset
    validation: Dataset
    test: Dataset
    train_collator: Callable[[list[dict[str, Any]]], dict[str, Any]]
    eval_collator: Callable[[list[dict[str, Any]]], dict[str, Any]]
    num_classes: int
    class_names: tuple[str, ...]
    modality: str
    sample_rate: int | None = None
    num_skipped: int = 0


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Loads (Hub or ``cfg.path``), splits, decodes once, and builds the collators for dataset ``cfg.name``."""
    spec = get_spec(cfg.name)
    raw = load_raw_splits(cfg)
    logger.info("%s: %s", spec.name, ", ".join(f"{name} {len(ds)}" for name, ds in raw.items()))
    common = {"num_classes": spec.num_classes, "class_names": spec.class_names, "modality": spec.modality}
    if spec.modality == "image":
        return PreparedData(
            train=ImageDataset.from_hf(raw["train"]),
            validation=ImageDataset.from_hf(raw["validation"]),
            test=ImageDataset.from_hf(raw["test"]),
            train_collator=ImageBatchTransform(
                train=True,
                mean=spec.mean,
                std=spec.std,
                padding=cfg.random_crop_padding,
                flip=cfg.horizontal_flip,
                rotation_degrees=cfg.rotation_degrees,
            ),
            eval_collator=ImageBatchTransform(train=False, mean=spec.mean, std=spec.std),
            **common,
        )
    decoded = {name: decode_audio(ds, cfg.sample_rate, cfg.segment_seconds) for name, ds in raw.items()}
    collator = AudioCollator()
    return PreparedData(
        train=AudioSegmentDataset(decoded["train"]),
        validation=AudioClipDataset(decoded["validation"]),
        test=AudioClipDataset(decoded["test"]),
        train_collator=collator,
        eval_collator=collator,
        sample_rate=cfg.sample_rate,
        num_skipped=sum(len(d.skipped) for d in decoded.values()),
        **common,
    )
