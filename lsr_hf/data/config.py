"""``DataConfig``: which dataset to load and how to augment it (the ``data:`` section of a recipe)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from lsr_hf.data.quality import DEFAULT_MAX_SKIPPED_FRACTION
from lsr_hf.data.specs import SPECS

AUTO = "auto"  # data.name for a dataset that data.path alone describes


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


@dataclass
class DataConfig:
    """Dataset, splits and augmentation. Validated on construction: an invalid value raises ``ValueError``
    whose message starts with the field name (the recipe loader prefixes it with ``recipes/x.yaml: data.``)."""

    name: str = field(
        default="demo",
        metadata={
            "help": f"Dataset: a built-in one ({', '.join(SPECS)}), any HuggingFace Hub dataset id (e.g. "
            f"'user/my-clips'), or {AUTO!r} for the dataset at data.path. For a dataset without a built-in spec the "
            "modality, class names and splits are read from the data."
        },
    )
    path: str | None = field(
        default=None,
        metadata={
            "help": "Local copy instead of the Hub: a parquet file, a folder of parquet files (split files named "
            "like the Hub's train-*.parquet / validation-* / test-*, or a folder per split), an image folder "
            "([<split>/]<class>/<file>) or an audio folder ([<split>/]<class>/<file>.wav)."
        },
    )
    input_column: str | None = field(
        default=None, metadata={"help": "Column holding the images/audio, when local data differs from the Hub's."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Column holding the labels (class ids or class names), when it differs."}
    )
    validation_fraction: float = field(
        default=0.1,
        metadata={
            "help": "In (0, 1): share of the training split held out (stratified, seeded) as validation when "
            "the dataset has no validation split."
        },
    )
    test_fraction: float = field(
        default=0.2,
        metadata={
            "help": "In (0, 1): share of the data held out (stratified, seeded) as test when the dataset has no "
            "test split (e.g. a local copy of all 1,000 GTZAN clips). validation_fraction + test_fraction < 1."
        },
    )
    split_seed: int = field(
        default=42, metadata={"help": "Seed of the carved splits and of the max_*_samples subsets."}
    )
    num_folds: int | None = field(
        default=None,
        metadata={
            "help": ">= 2: k-fold cross-validation over the examples (clips, for audio) of a dataset without a test "
            "split: they are dealt into num_folds stratified, seeded (split_seed) folds, fold data.fold is the "
            "test split (test_fraction is then not used) and validation is carved from the rest as usual. Over "
            "data.fold = 0 .. num_folds-1 every example is tested exactly once. null: no folds."
        },
    )
    fold: int = field(
        default=0, metadata={"help": "In [0, num_folds): which fold is the test split (only with data.num_folds)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "> 0: keep a seeded random subset of the training split (debugging)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "> 0: keep a seeded random subset of the validation and test splits."}
    )
    max_skipped_fraction: float = field(
        default=DEFAULT_MAX_SKIPPED_FRACTION,
        metadata={
            "help": "In [0, 1]: the largest share of a split's images/audio files that may be undecodable; they are "
            "skipped, logged and counted (results.json dataset.num_skipped). More stops the job before training."
        },
    )
    random_crop_padding: int = field(
        default=4, metadata={"help": ">= 0: zero padding of the training random crop (0 disables the crop)."}
    )
    horizontal_flip: bool = field(default=True, metadata={"help": "Random horizontal flip (p = 0.5) in training."})
    rotation_degrees: float = field(
        default=0.0, metadata={"help": "In [0, 180]: random rotation in [-deg, deg] in training (0 disables it)."}
    )
    mean: list[float] | None = field(
        default=None,
        metadata={
            "help": "Images: per-channel (RGB) mean on the [0, 1] scale used to normalise; null: the built-in "
            "dataset's, or computed on the training split of any other dataset."
        },
    )
    std: list[float] | None = field(
        default=None, metadata={"help": "Images: per-channel (RGB) std (> 0), as data.mean; null: as for mean."}
    )
    image_size: int | None = field(
        default=None,
        metadata={
            "help": "> 0: images are resized (bilinear) to image_size x image_size when decoded; null keeps them "
            "as they are (they must then all have the same size)."
        },
    )
    sample_rate: int | None = field(
        default=22050,
        metadata={"help": "> 0: audio is resampled to this rate (Hz); null: the rate of the training files."},
    )
    segment_seconds: float = field(
        default=3.0, metadata={"help": "> 0: length of the audio segments the clips are cut into (seconds)."}
    )
    mixup_alpha: float = field(
        default=0.0,
        metadata={
            "help": ">= 0: mixup's Beta(α, α) parameter in training (timm.data.Mixup); 0 disables mixup. The loss "
            "then takes soft targets (lsr_hf.losses: teacher q(y) = b + (a - b)·y). Evaluation keeps the labels."
        },
    )
    cutmix_alpha: float = field(
        default=0.0,
        metadata={
            "help": ">= 0: CutMix's Beta(α, α) parameter in training (images only; timm.data.Mixup); 0 disables "
            "CutMix. With mixup_alpha too, each batch takes one of the two (data.mixup_switch_prob)."
        },
    )
    mixup_prob: float = field(
        default=1.0,
        metadata={"help": "In [0, 1]: probability that a training batch is mixed at all (mixup or CutMix)."},
    )
    mixup_switch_prob: float = field(
        default=0.5,
        metadata={
            "help": "In [0, 1]: with both mixup_alpha and cutmix_alpha > 0, probability of CutMix instead of mixup "
            "for a batch."
        },
    )

    @property
    def mixup_enabled(self) -> bool:
        """Whether training batches are mixed (mixup and/or CutMix, ``lsr_hf.data.mixup.build_mixup``)."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mixup_prob > 0

    @property
    def builtin(self) -> bool:
        """Whether ``name`` is a built-in dataset (with a spec) rather than a Hub id or ``auto``."""
        return self.name in SPECS

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or any(c.isspace() for c in self.name):
            raise ValueError(
                f"name must be a built-in dataset ({', '.join(SPECS)}), a Hub dataset id or {AUTO!r}, got {self.name!r}"
            )
        if self.name == AUTO and self.path is None:
            raise ValueError(
                f"path must be set when name is {AUTO!r}: give the dataset with --set data.path=DIR (a local image "
                "folder, audio folder or parquet folder) or --set data.name=<Hub dataset id>"
            )
        if self.path is not None:
            if not isinstance(self.path, str) or not self.path:
                raise ValueError(f"path must be a non-empty string or null, got {self.path!r}")
            if self.name == "demo":
                raise ValueError(f"path must be null for the bundled demo dataset, got {self.path!r}")
        for name in ("input_column", "label_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or null, got {value!r}")
        if self.input_column is not None and self.input_column == self.label_column:
            raise ValueError(f"label_column must differ from input_column, got {self.label_column!r} for both")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"test_fraction must be < 1 - validation_fraction = {1.0 - self.validation_fraction:g}, "
                f"got {self.test_fraction!r}"
            )
        if not _is_int(self.split_seed) or self.split_seed < 0:
            raise ValueError(f"split_seed must be an integer >= 0, got {self.split_seed!r}")
        if self.num_folds is not None and (not _is_int(self.num_folds) or self.num_folds < 2):
            raise ValueError(f"num_folds must be an integer >= 2 or null, got {self.num_folds!r}")
        if not _is_int(self.fold) or self.fold < 0:
            raise ValueError(f"fold must be an integer >= 0, got {self.fold!r}")
        if self.num_folds is None and self.fold != 0:
            raise ValueError(f"fold must be 0 when num_folds is null (set data.num_folds), got {self.fold!r}")
        if self.num_folds is not None and self.fold >= self.num_folds:
            raise ValueError(f"fold must be in [0, {self.num_folds}) with num_folds={self.num_folds}, got {self.fold!r}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value <= 0):
                raise ValueError(f"{name} must be an integer > 0 or null, got {value!r}")
        if not _is_real(self.max_skipped_fraction) or not 0.0 <= self.max_skipped_fraction <= 1.0:
            raise ValueError(f"max_skipped_fraction must be in [0, 1], got {self.max_skipped_fraction!r}")
        if not _is_int(self.random_crop_padding) or self.random_crop_padding < 0:
            raise ValueError(f"random_crop_padding must be an integer >= 0, got {self.random_crop_padding!r}")
        if not isinstance(self.horizontal_flip, bool):
            raise ValueError(f"horizontal_flip must be true or false, got {self.horizontal_flip!r}")
        if not _is_real(self.rotation_degrees) or not 0.0 <= self.rotation_degrees <= 180.0:
            raise ValueError(f"rotation_degrees must be in [0, 180], got {self.rotation_degrees!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_real(v) for v in value):
                raise ValueError(f"{name} must be 3 numbers (R, G, B) or null, got {value!r}")
            if name == "std" and min(value) <= 0:
                raise ValueError(f"std must be > 0 per channel, got {value!r}")
            setattr(self, name, [float(v) for v in value])
        if self.image_size is not None and (not _is_int(self.image_size) or self.image_size <= 0):
            raise ValueError(f"image_size must be an integer > 0 or null, got {self.image_size!r}")
        if self.sample_rate is not None and (not _is_int(self.sample_rate) or self.sample_rate <= 0):
            raise ValueError(f"sample_rate must be an integer > 0 or null, got {self.sample_rate!r}")
        if not _is_real(self.segment_seconds) or self.segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be > 0, got {self.segment_seconds!r}")
        if self.sample_rate is not None and round(self.segment_seconds * self.sample_rate) < 1:
            raise ValueError(
                f"segment_seconds must span at least one sample at sample_rate={self.sample_rate}, "
                f"got {self.segment_seconds!r}"
            )

        for name in ("mixup_alpha", "cutmix_alpha"):
            value = getattr(self, name)
            if not _is_real(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0 (0 disables it), got {value!r}")
            setattr(self, name, float(value))
        for name in ("mixup_prob", "mixup_switch_prob"):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
            setattr(self, name, float(value))
        if self.cutmix_alpha > 0 and self.builtin and SPECS[self.name].modality != "image":
            raise ValueError(
                f"cutmix_alpha must be 0 for the {SPECS[self.name].modality} dataset {self.name!r}: CutMix cuts "
                f"image boxes, got {self.cutmix_alpha!r} (mixup_alpha works on audio too)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
