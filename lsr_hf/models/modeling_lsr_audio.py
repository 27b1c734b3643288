"""Audio classifier: log-mel front end + any timm CNN, as a ``transformers`` model.

This file imports only torch, torchaudio, timm and transformers: lsr-hf ships it in every audio model folder
(``auto_map`` in ``config.json``), so that the folder loads without lsr-hf with ``trust_remote_code=True``.
lsr-hf itself registers these classes with the ``Auto`` classes (``lsr_hf.models.audio``) and needs no remote code.

``AudioCNNForAudioClassification`` takes raw waveforms and computes the features inside the model, so they are
made on the model's device and saved with it:

1. ``torchaudio`` ``MelSpectrogram`` (power 2, Hann window of ``n_fft``, ``hop_length``, ``n_mels`` bands,
   0 Hz to Nyquist) and ``AmplitudeToDB`` (dB, floor at ``top_db`` below each example's peak),
2. per-example standardisation: each log-mel image is shifted and scaled to mean 0, std 1 over all its
   bands and frames (no dataset statistics to carry around; overall loudness is removed by design),
3. a timm backbone created with ``in_chans=1`` on the (1, n_mels, frames) image, with timm's own init.

The front end always runs in float32: autocast is switched off around it and it ignores dtype casts of the
model (``model.half()``); the backbone runs in the model's dtype (or under the caller's autocast).

``input_values`` is (B, T) (one segment per example, training) or (B, S, T) (a clip cut into S equal segments,
evaluation): then all B*S segments go through the network and the clip's logits are its vote (``clip_vote``), with
``z_s`` the logits of segment s:

    "logits":         z = (1/S) Σ_s z_s
    "probabilities":  z = log( (1/S) Σ_s softmax(z_s) )      (softmax(z) is the mean of the segments' probabilities)
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import timm
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

CLIP_VOTES = ("logits", "probabilities")  # how a clip's segment predictions are combined (config.clip_vote)
RESERVED_BACKBONE_KWARGS = ("num_classes", "pretrained", "in_chans")


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be an integer > 0, got {value!r}")


class AudioCNNConfig(PreTrainedConfig):
    r"""Configuration of [`AudioCNNForAudioClassification`].

    Args:
        sample_rate (`int`, defaults to 22050): sample rate (Hz) of the waveforms the model is fed.
        n_mels (`int`, defaults to 128): mel bands.
        n_fft (`int`, defaults to 2048): FFT size and Hann window length.
        hop_length (`int`, defaults to 512): hop between STFT frames.
        top_db (`float`, *optional*, defaults to 80.0): dynamic range kept below each example's peak (dB);
            `None` keeps all of it.
        backbone (`str`, defaults to `"resnet18"`): timm model name (created with `in_chans=1`).
        backbone_kwargs (`dict`, *optional*): extra keyword arguments for `timm.create_model`.
        clip_vote (`str`, defaults to `"logits"`): how the segments of a clip (3-D input) are combined: the mean of
            their logits (`"logits"`) or the log of the mean of their softmax (`"probabilities"`).
        num_labels / id2label / label2id: the classes, as for any transformers classifier.
    """

    model_type = "lsr_audio_cnn"

    sample_rate: int = 22050
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 512
    top_db: float | None = 80.0
    backbone: str = "resnet18"
    backbone_kwargs: dict[str, Any] | None = None
    clip_vote: str = "logits"

    def __post_init__(self, **kwargs: Any) -> None:
        if self.clip_vote not in CLIP_VOTES:
            raise ValueError(f"clip_vote must be one of {', '.join(map(repr, CLIP_VOTES))}, got {self.clip_vote!r}")
        for name in ("sample_rate", "n_mels", "n_fft", "hop_length"):
            _positive_int(name, getattr(self, name))
        top_db = self.top_db
        if top_db is not None and (
            isinstance(top_db, bool) or not isinstance(top_db, numbers.Real) or not math.isfinite(top_db) or top_db <= 0
        ):
            raise ValueError(f"top_db must be a number > 0 or null, got {top_db!r}")
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError(f"backbone must be a timm model name, got {self.backbone!r}")
        backbone_kwargs = {} if self.backbone_kwargs is None else self.backbone_kwargs
        if not isinstance(backbone_kwargs, dict):
            raise ValueError(f"backbone_kwargs must be a mapping, got {backbone_kwargs!r}")
        reserved = sorted(set(backbone_kwargs) & set(RESERVED_BACKBONE_KWARGS))
        if reserved:
            raise ValueError(f"backbone_kwargs must not set {', '.join(reserved)}, got {backbone_kwargs!r}")
        self.backbone_kwargs = dict(backbone_kwargs)
        super().__post_init__(**kwargs)


class LogMelSpectrogram(nn.Module):
    """Waveforms (N, T) -> per-example standardised log-mel images (N, 1, n_mels, frames), in float32."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, top_db: float | None) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=2.0
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=top_db)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> nn.Module:
        # follow device moves but not dtype casts (model.half(), .to(torch.bfloat16)): the window and the mel
        # filterbank stay float32, bit for bit
        def move_only(tensor: torch.Tensor) -> torch.Tensor:
            moved = fn(tensor)
            return moved if moved.dtype == tensor.dtype else tensor.to(moved.device)

        return super()._apply(move_only, recurse)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            power = self.mel(waveform.float()).unsqueeze(1)  # (N, 1, n_mels, frames)
            # 4-D input: AmplitudeToDB's top_db floor is then taken per example, not over the whole batch
            log_mel = self.to_db(power)
            mean = log_mel.mean(dim=(-2, -1), keepdim=True)
            std = log_mel.std(dim=(-2, -1), keepdim=True)
            return (log_mel - mean) / (std + 1e-5)


class AudioCNNForAudioClassification(PreTrainedModel):
    """Log-mel front end + timm CNN backbone (see the module docstring). ``forward(input_values, labels=None)``
    with ``input_values`` (B, T) or (B, S, T) float waveforms returns ``SequenceClassifierOutput`` with
    ``logits`` (B, num_labels) (clip-level means of segment logits for 3-D input) and, with ``labels``,
    the cross-entropy ``loss`` (summed and divided by ``num_items_in_batch`` when the Trainer passes it)."""

    config_class = AudioCNNConfig
    main_input_name = "input_values"
    input_modalities = ("audio",)
    _keep_in_fp32_modules_strict = ["front_end"]

    def __init__(self, config: AudioCNNConfig) -> None:
        super().__init__(config)
        # from_pretrained builds models on the meta device, where torchaudio cannot compute its mel filterbank:
        # build the (small, parameter-free) front end on the CPU then; the weights' loading fills the rest
        device = torch.get_default_device()
        with torch.device("cpu" if device.type == "meta" else device):
            self.front_end = LogMelSpectrogram(
                sample_rate=config.sample_rate,
                n_fft=config.n_fft,
                hop_length=config.hop_length,
                n_mels=config.n_mels,
                top_db=config.top_db,
            )
        self.backbone = timm.create_model(
            config.backbone, pretrained=False, num_classes=config.num_labels, in_chans=1, **config.backbone_kwargs
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing to do: timm initialised the backbone with its own scheme when it built it (transformers'
        default would overwrite that with N(0, 0.02)), and the front end has no learnable parameters."""

    def segment_logits(self, input_values: torch.Tensor) -> torch.Tensor:
        """The logits (B, S, num_labels) of every segment of clips ``input_values`` (B, S, T), before the vote."""
        segments = input_values.reshape(-1, input_values.shape[-1])
        logits = self.backbone(self.front_end(segments).to(self.dtype))
        return logits.view(input_values.shape[0], input_values.shape[1], -1)

    def forward(
        self,
        input_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if input_values.dim() not in (2, 3):
            raise ValueError(
                f"input_values must be waveforms of shape (batch, samples) or (batch, segments, samples), "
                f"got shape {tuple(input_values.shape)}"
            )
        if input_values.dim() == 3:
            logits = clip_logits(self.segment_logits(input_values), self.config.clip_vote)
        else:
            logits = self.backbone(self.front_end(input_values).to(self.dtype))
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if num_items_in_batch is None:
                loss = F.cross_entropy(logits.float(), labels)
            else:
                loss = F.cross_entropy(logits.float(), labels, reduction="sum") / num_items_in_batch
        return SequenceClassifierOutput(loss=loss, logits=logits)


def clip_logits(segment_logits: torch.Tensor, vote: str = "logits") -> torch.Tensor:
    """A clip's logits (..., K) from its segments' (..., S, K): the mean of the segment logits (``vote="logits"``)
    or ``log((1/S) Σ_s softmax(z_s))`` (``vote="probabilities"``, computed as logsumexp of the log-softmaxes
    minus log S, in float32), whose softmax is the mean of the segments' probabilities."""
    if vote == "logits":
        return segment_logits.mean(dim=-2)
    if vote == "probabilities":
        log_p = F.log_softmax(segment_logits.float(), dim=-1)
        return (torch.logsumexp(log_p, dim=-2) - math.log(segment_logits.shape[-2])).to(segment_logits.dtype)
    raise ValueError(f"vote must be one of {', '.join(map(repr, CLIP_VOTES))}, got {vote!r}")


# saving copies this file next to config.json and records it in auto_map (what trust_remote_code=True loads)
AudioCNNConfig.register_for_auto_class()
AudioCNNForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
