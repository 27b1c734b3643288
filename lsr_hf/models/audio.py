"""Audio classifier: log-mel front end + any timm CNN, as a ``transformers`` model.

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
evaluation): then all B*S segments go through the network and a clip's logits are the mean of its segments'.
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
from transformers import AutoConfig, AutoModelForAudioClassification, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from lsr_hf.models.config import ModelConfig
from lsr_hf.models.image import check_timm_name, label_maps

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

    def __post_init__(self, **kwargs: Any) -> None:
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
        segments = input_values.reshape(-1, input_values.shape[-1])
        features = self.front_end(segments).to(self.dtype)
        logits = self.backbone(features)
        if input_values.dim() == 3:
            logits = logits.view(input_values.shape[0], input_values.shape[1], -1).mean(dim=1)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if num_items_in_batch is None:
                loss = F.cross_entropy(logits.float(), labels)
            else:
                loss = F.cross_entropy(logits.float(), labels, reduction="sum") / num_items_in_batch
        return SequenceClassifierOutput(loss=loss, logits=logits)


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
