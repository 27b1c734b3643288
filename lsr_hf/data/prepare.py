"""``prepare_data``: the one entry point the training job calls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datasets.exceptions import DatasetGenerationError
from torch.utils.data import Dataset

from lsr_hf.data.audio import AudioClipDataset, AudioCollator, AudioSegmentDataset, DecodedAudio, decode_audio
from lsr_hf.data.config import DataConfig
from lsr_hf.data.image import ImageBatchTransform, ImageDataset
from lsr_hf.data.load import load_raw_splits
from lsr_hf.data.quality import check_parquet_files
from lsr_hf.data.specs import get_spec
from lsr_hf.errors import DataError

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
    ``num_skipped`` counts the undecodable images or audio files (over all splits), ``skipped`` names them per split
    (``lsr_hf.data.quality.skip_note``); ``sample_rate`` is None for images.
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
    skipped: dict[str, list[str]] = field(default_factory=dict)

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
    """Loads (Hub or ``cfg.path``), splits, decodes once, and builds the collators for dataset ``cfg.name``.

    Raises ``DataError`` (a ``ValueError``) for data that cannot be trained on: what ``load_raw_splits`` rejects
    (columns, labels, paths), an empty split, or a split with more than ``cfg.max_skipped_fraction`` undecodable files.
    """
    spec = get_spec(cfg.name)
    if cfg.path is not None:
        check_parquet_files(cfg.path)
    try:
        raw = load_raw_splits(cfg)
    except DataError:
        raise
    except ValueError as err:
        raise DataError(str(err)) from err
    except DatasetGenerationError as err:  # files datasets cannot read; the innermost cause says why
        cause = err
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        raise DataError(f"datasets cannot read {cfg.path or spec.hub_id}: {cause}") from err
    logger.info("%s: %s", spec.name, ", ".join(f"{name} {len(ds)}" for name, ds in raw.items()))
    for name, ds in raw.items():
        if len(ds) == 0:
            raise DataError(f"the {name} split of {cfg.path or spec.name} is empty: it has no rows")
    fraction = cfg.max_skipped_fraction
    if spec.modality == "image":
        splits = {"train": ImageDataset.from_hf(raw["train"], split="train", max_skipped_fraction=fraction)}
        size = tuple(splits["train"].images.shape[2:])  # evaluation images are resized to the training size
        for name in ("validation", "test"):
            splits[name] = ImageDataset.from_hf(raw[name], size=size, split=name, max_skipped_fraction=fraction)
        return image_data(splits, cfg)
    decoded = {
        name: decode_audio(ds, cfg.sample_rate, cfg.segment_seconds, split=name, max_skipped_fraction=fraction)
        for name, ds in raw.items()
    }
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
        num_skipped=sum(len(split.skipped) for split in splits.values()),
        skipped={name: list(split.skipped) for name, split in splits.items()},
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
        skipped={name: list(d.skipped) for name, d in decoded.items()},
    )
