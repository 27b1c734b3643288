"""``DataConfig``: which dataset to load and how to augment it (the ``data:`` section of a recipe)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from lsr_hf.data.quality import DEFAULT_MAX_SKIPPED_FRACTION
from lsr_hf.data.specs import SPECS


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


@dataclass
class DataConfig:
    """Dataset, splits and augmentation. Validated on construction: an invalid value raises ``ValueError``
    whose message starts with the field name (the recipe loader prefixes it with ``recipes/x.yaml: data.``)."""

    name: str = field(default="demo", metadata={"help": f"Dataset, one of {', '.join(SPECS)}."})
    path: str | None = field(
        default=None,
        metadata={
            "help": "Local copy instead of the Hub: a parquet file, a folder of parquet files (split files named "
            "like the Hub's train-*.parquet / validation-* / test-*, or a folder per split), an image folder "
            "(<split>/<class>/<file>) or an audio folder (<genre>/<file>.wav)."
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
    sample_rate: int = field(default=22050, metadata={"help": "> 0: audio is resampled to this rate (Hz)."})
    segment_seconds: float = field(
        default=3.0, metadata={"help": "> 0: length of the audio segments the clips are cut into (seconds)."}
    )

    def __post_init__(self) -> None:
        if self.name not in SPECS:
            raise ValueError(f"name must be one of {', '.join(SPECS)}, got {self.name!r}")
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
        if not _is_int(self.sample_rate) or self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be an integer > 0, got {self.sample_rate!r}")
        if not _is_real(self.segment_seconds) or self.segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be > 0, got {self.segment_seconds!r}")
        if round(self.segment_seconds * self.sample_rate) < 1:
            raise ValueError(
                f"segment_seconds must span at least one sample at sample_rate={self.sample_rate}, "
                f"got {self.segment_seconds!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
