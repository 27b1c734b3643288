"""``prepare_data``: the one entry point the training job calls."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.exceptions import DatasetGenerationError
from torch.utils.data import Dataset

from lsr_hf.data.audio import (
    AudioClipDataset,
    AudioCollator,
    AudioSegmentDataset,
    DecodedAudio,
    decode_audio,
    native_sample_rate,
)
from lsr_hf.data.config import DataConfig
from lsr_hf.data.image import ImageBatchTransform, ImageDataset, channel_stats
from lsr_hf.data.load import IMAGE_COLUMN, LABEL_COLUMN, load_raw_splits
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
    (``lsr_hf.job.train``) loads uint8 batches and runs it there.
    Audio: training items are segments ``{"input_values": (T,)}``, evaluation items whole clips
    ``{"input_values": (S, T)}`` (average the S segment logits); both collators just stack.
    ``num_skipped`` counts the undecodable images or audio files (over all splits), ``skipped`` names them per split
    (``lsr_hf.data.quality.skip_note``).

    What a preprocessor saved with the model needs, read from the data (not from a built-in spec):
    images: ``mean``/``std`` (per RGB channel, [0, 1] scale) and ``image_size`` (H, W); audio: ``sample_rate``
    (Hz), ``segment_length`` (samples, T) and ``num_segments`` (S of an evaluation clip). The others are None.
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
    skipped: dict[str, list[str]] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    image_size: tuple[int, int] | None = None
    segment_length: int | None = None
    num_segments: int | None = None

    @property
    def num_skipped(self) -> int:
        """Undecodable images or audio files over all splits."""
        return sum(len(notes) for notes in self.skipped.values())

    @property
    def eval_preprocessing(self) -> dict[str, Any]:
        """What evaluation feeds the model (for saving with the model, ``lsr_hf.job.processing``). Images:
        ``{"input_size": (3, H, W), "mean": (r, g, b), "std": (r, g, b)}``; audio: ``{"sample_rate": Hz,
        "segment_length": T samples, "num_segments": S}`` (a test clip is padded with zeros or cropped to S·T
        samples, scored as the mean of its S segments' logits)."""
        if self.modality == "audio":
            return {
                "sample_rate": self.sample_rate,
                "segment_length": self.segment_length,
                "num_segments": self.num_segments,
            }
        return {"input_size": (3, *self.image_size), "mean": tuple(self.mean), "std": tuple(self.std)}


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Loads (Hub or ``cfg.path``), splits, decodes once, and builds the collators for ``cfg``'s dataset.

    The modality and class names are those of the loaded data (for a built-in dataset, its spec's); image
    statistics are ``cfg.mean``/``cfg.std``, else the built-in spec's, else computed on the training split; the
    audio rate is ``cfg.sample_rate``, else the training files' own rate. Images of the validation and test splits
    are resized to the training split's size (``cfg.image_size`` resizes all of them).

    Raises ``DataError`` (a ``ValueError``) for data that cannot be trained on: what ``load_raw_splits`` rejects
    (``DataSourceError``: a Hub dataset out of reach, a path with nothing usable; columns, labels), an empty split,
    or a split with more than ``cfg.max_skipped_fraction`` undecodable files.
    """
    if cfg.path is not None:
        check_file_names(cfg.path)
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
        raise DataError(f"datasets cannot read {cfg.path or cfg.name}: {cause}") from err
    source = cfg.path or cfg.name
    logger.info("%s: %s", source, ", ".join(f"{name} {len(ds)}" for name, ds in raw.items()))
    for name, ds in raw.items():
        if len(ds) == 0:
            raise DataError(f"the {name} split of {source} is empty: it has no rows")
    class_names = tuple(raw["train"].features[LABEL_COLUMN].names)
    fraction = cfg.max_skipped_fraction
    if IMAGE_COLUMN in raw["train"].column_names:
        size = (cfg.image_size, cfg.image_size) if cfg.image_size else None
        splits = {"train": ImageDataset.from_hf(raw["train"], size=size, split="train", max_skipped_fraction=fraction)}
        size = tuple(splits["train"].images.shape[2:])  # evaluation images are resized to the training size
        for name in ("validation", "test"):
            splits[name] = ImageDataset.from_hf(raw[name], size=size, split=name, max_skipped_fraction=fraction)
        return image_data(splits, cfg, class_names)
    sample_rate = cfg.sample_rate or native_sample_rate(raw["train"])
    decoded = {
        name: decode_audio(ds, sample_rate, cfg.segment_seconds, split=name, max_skipped_fraction=fraction)
        for name, ds in raw.items()
    }
    return audio_data(decoded, cfg, class_names, sample_rate)


def check_file_names(path: str, shown: int = 5) -> None:
    """``DataError`` naming the files under the folder ``path`` whose names are not valid UTF-8 (bytes that the
    file system allows but ``datasets`` cannot read; it would reject the whole folder without naming them)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        return
    bad: list[str] = []
    for file in root.rglob("*"):
        try:
            str(file).encode("utf-8")
        except UnicodeEncodeError:
            bad.append(repr(os.fsencode(file.relative_to(root))))
            if len(bad) > shown:
                break
    if bad:
        names = ", ".join(bad[:shown]) + (", ..." if len(bad) > shown else "")
        raise DataError(
            f"{path} holds file names that are not valid UTF-8, which datasets cannot read: {names}; rename them "
            "to UTF-8 (e.g. with convmv) or remove them"
        )


def image_data(
    splits: dict[str, ImageDataset], cfg: DataConfig, class_names: tuple[str, ...] | None = None
) -> PreparedData:
    """``PreparedData`` from decoded image splits (``train``, ``validation``, ``test``): the collators of DESIGN §4
    with ``cfg``'s augmentation settings and mean/std (``cfg.mean``/``cfg.std``, else the built-in dataset's, else
    the training split's). ``class_names`` default to the built-in dataset's."""
    spec = get_spec(cfg.name) if cfg.builtin else None
    if class_names is None:
        class_names = spec.class_names if spec is not None else ()
    if cfg.mean is not None and cfg.std is not None:
        mean, std = tuple(cfg.mean), tuple(cfg.std)
    elif spec is not None and cfg.mean is None and cfg.std is None:
        mean, std = spec.mean, spec.std
    else:
        mean, std = channel_stats(splits["train"].images)
        mean, std = tuple(cfg.mean or mean), tuple(cfg.std or std)
        logger.info("normalising with mean %s, std %s (training split)", mean, std)
    return PreparedData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        train_collator=ImageBatchTransform(
            train=True,
            mean=mean,
            std=std,
            padding=cfg.random_crop_padding,
            flip=cfg.horizontal_flip,
            rotation_degrees=cfg.rotation_degrees,
        ),
        eval_collator=ImageBatchTransform(train=False, mean=mean, std=std),
        num_classes=len(class_names),
        class_names=class_names,
        modality="image",
        skipped={name: list(split.skipped) for name, split in splits.items()},
        mean=mean,
        std=std,
        image_size=(int(splits["train"].images.shape[2]), int(splits["train"].images.shape[3])),
    )


def audio_data(
    decoded: dict[str, DecodedAudio],
    cfg: DataConfig,
    class_names: tuple[str, ...] | None = None,
    sample_rate: int | None = None,
) -> PreparedData:
    """``PreparedData`` from decoded audio splits: training segments, whole clips for evaluation.
    ``class_names`` default to the built-in dataset's, ``sample_rate`` (that of ``decoded``) to ``cfg``'s."""
    if class_names is None:
        class_names = get_spec(cfg.name).class_names
    collator = AudioCollator()
    return PreparedData(
        train=AudioSegmentDataset(decoded["train"]),
        validation=AudioClipDataset(decoded["validation"]),
        test=AudioClipDataset(decoded["test"]),
        train_collator=collator,
        eval_collator=collator,
        num_classes=len(class_names),
        class_names=class_names,
        modality="audio",
        sample_rate=sample_rate or cfg.sample_rate,
        skipped={name: list(d.skipped) for name, d in decoded.items()},
        segment_length=decoded["train"].segment_length,
        num_segments=decoded["test"].num_segments,
    )
