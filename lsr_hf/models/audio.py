"""The audio classifier on lsr-hf's side: its builder, the segment predictions kept with a job's test logits, and
the registration with transformers' ``AutoConfig`` / ``AutoModelForAudioClassification`` (so that lsr-hf loads
saved folders without remote code).

The model itself (``AudioCNNConfig``, ``LogMelSpectrogram``, ``AudioCNNForAudioClassification``, ``clip_logits``)
is defined in :mod:`lsr_hf.models.modeling_lsr_audio`, the self-contained file shipped with every trained model;
see its docstring for the front end and the clip vote.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import timm
import torch
from transformers import AutoConfig, AutoModelForAudioClassification, PreTrainedModel

from lsr_hf.models.config import ModelConfig
from lsr_hf.models.image import check_timm_name, label_maps
from lsr_hf.models.modeling_lsr_audio import (  # noqa: F401  (the public names of this module)
    CLIP_VOTES,
    RESERVED_BACKBONE_KWARGS,
    AudioCNNConfig,
    AudioCNNForAudioClassification,
    LogMelSpectrogram,
    clip_logits,
)


@torch.no_grad()
def predict_segment_logits(
    model: AudioCNNForAudioClassification, clips: Any, collate: Callable[[list], dict], batch_size: int
) -> np.ndarray:
    """Every segment's logits, float32 (N, S, num_labels), of the N clips of ``clips`` (items with
    ``input_values`` (S, T), batched by ``collate``), in the model's eval mode on its device: what the clip vote
    combines (kept with the test predictions so that votes can be compared afterwards)."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(clips), batch_size):
            batch = collate([clips[i] for i in range(start, min(start + batch_size, len(clips)))])
            values = batch["input_values"].to(model.device)
            out.append(model.segment_logits(values).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float32)


AutoConfig.register(AudioCNNConfig.model_type, AudioCNNConfig, exist_ok=True)
AutoModelForAudioClassification.register(AudioCNNConfig, AudioCNNForAudioClassification, exist_ok=True)


def build_audio_model(
    cfg: ModelConfig, num_classes: int, sample_rate: int, id2label: dict[int, str] | None = None
) -> PreTrainedModel:
    """An ``AudioCNNForAudioClassification`` for ``sample_rate`` Hz waveforms with a ``cfg.name`` backbone,
    timm's init (or timm's pretrained weights with ``cfg.pretrained``, the first conv summed to one channel
    by timm), ``cfg.drop_rate`` before the classifier and ``cfg.n_mels`` / ``n_fft`` / ``hop_length``."""
    check_timm_name(cfg.name, cfg.pretrained)
    id2label, label2id = label_maps(num_classes, id2label)
    backbone_kwargs = dict(cfg.timm_kwargs)
    if cfg.drop_rate:
        backbone_kwargs["drop_rate"] = cfg.drop_rate
    config = AudioCNNConfig(
        sample_rate=sample_rate,
        n_mels=cfg.n_mels,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        backbone=cfg.name,
        backbone_kwargs=backbone_kwargs,
        clip_vote=cfg.clip_vote,
        id2label=id2label,
        label2id=label2id,
    )
    model = AudioCNNForAudioClassification(config)
    if cfg.pretrained:
        net = timm.create_model(cfg.name, pretrained=True, num_classes=num_classes, in_chans=1, **backbone_kwargs)
        model.backbone.load_state_dict(net.state_dict(), strict=True)
    if cfg.channels_last:
        model.backbone.to(memory_format=torch.channels_last)
    return model
