"""The preprocessing a trained model is saved with, in the forms transformers and timm load by themselves.

* Images (``TimmWrapperForImageClassification``): transformers reads a timm checkpoint's image processor
  (``TimmWrapperImageProcessor``, what ``AutoImageProcessor`` and ``pipeline("image-classification")`` load) from the
  ``pretrained_cfg`` inside ``config.json``, not from a ``preprocessor_config.json``. ``timm_pretrained_cfg`` rewrites
  it to what the job fed the model: the decoded images' size, the evaluation mean/std, ``crop_pct`` 1 (timm's eval
  transform then resizes the shorter side to H and centre-crops H×W, the identity on the H×W images the job used,
  so ``ToTensor`` + ``Normalize`` give exactly the job's evaluation input), and none of the ImageNet weights' source
  keys (``hf_hub_id``, ``url``, ``tag``...). The config is part of the model, so every checkpoint carries it.
* Audio (``AudioCNNForAudioClassification``): an ``AudioCNNFeatureExtractor`` with the job's sample rate, segment
  length and segment count, handed to Trainer as ``processing_class`` so it writes ``preprocessor_config.json`` in
  the final folder and in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from transformers import PreTrainedModel

from lsr_hf.data import PreparedData
from lsr_hf.models import AudioCNNFeatureExtractor

# pretrained_cfg keys that describe where timm's pretrained weights came from or their ImageNet input, not this model
STALE_PRETRAINED_KEYS = (
    "url", "hf_hub_id", "hf_hub_filename", "hf_hub_revision", "tag", "file", "source", "state_dict", "custom_load",
    "test_input_size", "test_crop_pct", "min_input_size", "pool_size", "license", "origin_url", "paper_ids",
    "paper_name", "notes", "label_names", "label_descriptions",
)  # fmt: skip


def _float32_values(values: Sequence[float]) -> list[float]:
    """The values as the shortest decimals that read back as the same float32 (what the job normalised with)."""
    return [float(str(np.float32(v))) for v in values]


def timm_pretrained_cfg(
    default: Mapping[str, Any], preprocessing: Mapping[str, Any], num_classes: int
) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` for a model trained on ``preprocessing`` (``PreparedData.eval_preprocessing`` of an
    image dataset): the architecture's ``default`` cfg (first conv, classifier, interpolation) with the input size,
    mean/std, ``crop_pct`` 1, ``crop_mode`` centre and ``num_classes`` of the trained model, without the keys of
    ``STALE_PRETRAINED_KEYS``."""
    cfg = {key: value for key, value in default.items() if key not in STALE_PRETRAINED_KEYS}
    cfg.update(
        input_size=[int(v) for v in preprocessing["input_size"]],
        mean=_float32_values(preprocessing["mean"]),
        std=_float32_values(preprocessing["std"]),
        interpolation=cfg.get("interpolation") or "bilinear",
        crop_pct=1.0,
        crop_mode="center",
        num_classes=int(num_classes),
    )
    cfg.setdefault("fixed_input_size", False)
    return cfg


def audio_feature_extractor(preprocessing: Mapping[str, Any]) -> AudioCNNFeatureExtractor:
    """The feature extractor for ``preprocessing`` (``PreparedData.eval_preprocessing`` of an audio dataset)."""
    return AudioCNNFeatureExtractor(
        sampling_rate=int(preprocessing["sample_rate"]),
        segment_length=int(preprocessing["segment_length"]),
        num_segments=int(preprocessing["num_segments"]),
    )


def attach_preprocessing(model: PreTrainedModel, data: PreparedData) -> AudioCNNFeatureExtractor | None:
    """Records ``data``'s evaluation preprocessing with ``model`` before training.

    Images: rewrites ``model.config.pretrained_cfg`` (and the timm net's own ``pretrained_cfg``) with
    :func:`timm_pretrained_cfg`; returns None (the config is the image processor). Audio: returns the
    :class:`AudioCNNFeatureExtractor` to pass to Trainer as ``processing_class``.
    """
    preprocessing = data.eval_preprocessing
    if data.modality == "audio":
        return audio_feature_extractor(preprocessing)
    timm_model = model.timm_model
    cfg = timm_pretrained_cfg(timm_model.pretrained_cfg, preprocessing, data.num_classes)
    model.config.pretrained_cfg = cfg
    timm_model.pretrained_cfg = dict(cfg)
    return None
