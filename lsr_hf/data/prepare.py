"""``prepare_data``: the one entry point the training job calls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from lsr_hf.data.audio import AudioClipDataset, AudioCollator, AudioSegmentDataset, DecodedAudio, decode_audio
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
    normalises, ``eval_collator`` only normalises, both give ``pixel_values`` float32 (B, 3, H, W). Both are
    ``ImageBatchTransform``s, whose ``transform`` also runs on a batch already on the GPU: the training job
    (``lsr_hf.train``) loads uint8 batches and runs it there.
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

    @property
    def eval_preprocessing(self) -> dict[str, Any]:
        """What evaluation feeds the model, read from the test split and the evaluation collator (for saving with
        the model, ``lsr_hf.processing``). Images: ``{"input_size": (3, H, W), "mean": (r, g, b), "std": (r, g,
        b)}``; audio: ``{"sample_rate": Hz, "segment_length": T samples, "num_segments": S}`` (a test clip is
        padded with zeros or cropped to S·T samples, scored as the mean of its S segments' logits)."""
        if self.modality == "audio":
            decoded = self.test.decoded
            return {
                "sample_rate": self.sample_rate,
                "segment_length": decoded.segment_length,
                "num_segments": decoded.num_segments,
            }
        transform = self.eval_collator
        return {
            "input_size": tuple(self.test.images.shape[1:]),
            "mean": tuple(transform.mean.flatten().tolist()),
            "std": tuple(transform.std.flatten().tolist()),
        }


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Loads (Hub or ``cfg.path``), splits, decodes once, and builds the collators for dataset ``cfg.name``."""
    spec = get_spec(cfg.name)
    raw = load_raw_splits(cfg)
    logger.info("%s: %s", spec.name, ", ".join(f"{name} {len(ds)}" for name, ds in raw.items()))
    if spec.modality == "image":
        return image_data({name: ImageDataset.from_hf(ds) for name, ds in raw.items()}, cfg)
    decoded = {name: decode_audio(ds, cfg.sample_rate, cfg.segment_seconds) for name, ds in raw.items()}
    return audio_data(decoded, cfg)


def image_data(splits: dict[str, ImageDataset], cfg: DataConfig) -> PreparedData:
    """``PreparedData`` from decoded image splits (``train``, ``validation``, ``test``): the collators of DESIGN §4
    with ``cfg``'s augmentation settings and the dataset's mean/std."""
    spec = get_spec(cfg.name)
    return PreparedData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        train_collator=ImageBatchTransform(
            train=True,
            mean=spec.mean,
            std=spec.std,
            padding=cfg.random_crop_padding,
            flip=cfg.horizontal_flip,
            rotation_degrees=cfg.rotation_degrees,
        ),
        eval_collator=ImageBatchTransform(train=False, mean=spec.mean, std=spec.std),
        num_classes=spec.num_classes,
        class_names=spec.class_names,
        modality=spec.modality,
    )


def audio_data(decoded: dict[str, DecodedAudio], cfg: DataConfig) -> PreparedData:
    """``PreparedData`` from decoded audio splits: training segments, whole clips for evaluation."""
    spec = get_spec(cfg.name)
    collator = AudioCollator()
    return PreparedData(
        train=AudioSegmentDataset(decoded["train"]),
        validation=AudioClipDataset(decoded["validation"]),
        test=AudioClipDataset(decoded["test"]),
        train_collator=collator,
        eval_collator=collator,
        num_classes=spec.num_classes,
        class_names=spec.class_names,
        modality=spec.modality,
        sample_rate=cfg.sample_rate,
        num_skipped=sum(len(d.skipped) for d in decoded.values()),
    )
