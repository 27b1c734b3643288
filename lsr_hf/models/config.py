"""``ModelConfig``: which network to build (the ``model:`` section of a recipe)."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from lsr_hf.models.modeling_lsr_audio import CLIP_VOTES  # one list for the recipe and the model shipped with a run

# kwargs that the builders set themselves from the other fields or from the data
RESERVED_TIMM_KWARGS = ("num_classes", "pretrained", "drop_rate", "in_chans")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class ModelConfig:
    """Backbone and audio front end. Validated on construction: an invalid value raises ``ValueError`` whose
    message starts with the field name (the recipe loader prefixes it with ``recipes/x.yaml: model.``).

    Whether ``name`` is a known timm model is checked when the model is built, so that models registered
    after the config was made (``import lsr_hf.models`` registers the ``cifar_*`` ones) are accepted."""

    name: str = field(
        default="cifar_resnet18",
        metadata={
            "help": "timm model name: any `timm.list_models()` entry, e.g. resnet18, or one of ours registered on "
            "`import lsr_hf.models`: cifar_resnet18, cifar_resnet50, cifar_mobilenetv2, cifar_shufflenetv2, "
            "cifar_googlenet, cifar_densenet121, cifar_resnext29_8x64d (3x3 stride-1 stem for 32x32 inputs)."
        },
    )
    pretrained: bool = field(
        default=False,
        metadata={"help": "Start from timm's pretrained weights (downloaded from the Hub; the head is re-made)."},
    )
    drop_rate: float = field(default=0.0, metadata={"help": "In [0, 1): dropout before the classifier."})
    timm_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Extra keyword arguments for `timm.create_model` (JSON-like values, saved in config.json), "
            f"e.g. {{drop_path_rate: 0.1}}. Not allowed: {', '.join(RESERVED_TIMM_KWARGS)} (set by the builder)."
        },
    )
    channels_last: bool = field(
        default=True,
        metadata={
            "help": "Keep the conv weights in channels_last memory format (cuDNN's fast layout for bf16/fp16 "
            "convolutions; same values, saved files unchanged)."
        },
    )
    n_mels: int = field(default=128, metadata={"help": "> 0: mel bands of the audio front end."})
    n_fft: int = field(default=2048, metadata={"help": "> 0: FFT size (and window length) of the audio front end."})
    hop_length: int = field(default=512, metadata={"help": "> 0: hop between STFT frames of the audio front end."})
    clip_vote: str = field(
        default="logits",
        metadata={
            "help": "Audio: how an evaluated clip's S segments are combined. 'logits': the mean of the segments' "
            "logits; 'probabilities': the mean of their softmax (the clip's logits are its log)."
        },
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty timm model name, got {self.name!r}")
        for flag in ("pretrained", "channels_last"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        given = self.drop_rate
        if (
            isinstance(given, bool)
            or not isinstance(given, numbers.Real)
            or not math.isfinite(float(given))
            or not 0.0 <= float(given) < 1.0
        ):
            raise ValueError(f"drop_rate must be a number in [0, 1), got {given!r}")
        self.drop_rate = float(given)
        self._check_timm_kwargs()
        for name in ("n_mels", "n_fft", "hop_length"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be an integer > 0, got {value!r}")
        if self.clip_vote not in CLIP_VOTES:
            raise ValueError(f"clip_vote must be one of {', '.join(map(repr, CLIP_VOTES))}, got {self.clip_vote!r}")

    def _check_timm_kwargs(self) -> None:
        kwargs = self.timm_kwargs
        if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
            raise ValueError(f"timm_kwargs must be a mapping of argument names to values, got {kwargs!r}")
        reserved = sorted(set(kwargs) & set(RESERVED_TIMM_KWARGS))
        if reserved:
            raise ValueError(
                f"timm_kwargs must not set {', '.join(reserved)} (the builder sets them; use the model fields or "
                f"the data), got {kwargs!r}"
            )
        try:
            json.dumps(kwargs, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(
                f"timm_kwargs must hold JSON-like values only (numbers, strings, booleans, null, lists, mappings), "
                f"got {kwargs!r}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for the resolved recipe written next to the outputs)."""
        return asdict(self)
