"""``AudioCNNFeatureExtractor``: turns a raw clip into what ``AudioCNNForAudioClassification`` scores.

The training job scores a clip in three steps (``lsr_hf.data.audio``): the mono waveform is resampled to the model's
rate with ``torchaudio.functional.resample``, padded with zeros or cropped to S segments of T samples, and the
model's logits for the S segments are averaged. transformers' built-in feature extractors compute spectrograms or
pad/normalise one sequence; none cuts a clip into segments, so this small extractor does the first two steps and the
model (given ``input_values`` of shape (B, S, T)) the third.

This file imports only numpy, torch, torchaudio and transformers: lsr-hf ships it in every audio model folder
(``auto_map`` in ``preprocessor_config.json``), so that ``pipeline("audio-classification", model=folder,
trust_remote_code=True)`` and ``AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)`` load it without
lsr-hf. With lsr-hf imported, ``lsr_hf.models.feature_extraction_audio`` registers it with ``AutoFeatureExtractor``
for ``AudioCNNConfig``, and the folder loads without remote code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF
from transformers import BatchFeature, SequenceFeatureExtractor



def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be an integer > 0, got {value!r}")
    return int(value)


class AudioCNNFeatureExtractor(SequenceFeatureExtractor):
    r"""Raw mono clips → ``input_values`` float32 (B, S, T) for [`AudioCNNForAudioClassification`].

    Args:
        sampling_rate (`int`): the model's sample rate (Hz). Clips given at another rate (``sampling_rate=`` in the
            call) are resampled with ``torchaudio.functional.resample``, as the training job resamples its files.
        segment_length (`int`): samples per segment, T.
        num_segments (`int`, *optional*): S. A clip is padded with zeros or cropped to S·T samples, as the training
            job does with its evaluation clips. `None`: S = ceil(samples / T), the whole clip, the last segment
            zero-padded (a batch must then hold clips with the same S).
    """

    model_input_names = ["input_values"]

    def __init__(
        self,
        sampling_rate: int = 22050,
        segment_length: int = 66150,
        num_segments: int | None = 10,
        padding_value: float = 0.0,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("feature_size", None)  # always 1 (a waveform); saved in preprocessor_config.json by the base class
        super().__init__(feature_size=1, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        _positive_int("sampling_rate", sampling_rate)
        self.segment_length = _positive_int("segment_length", segment_length)
        self.num_segments = None if num_segments is None else _positive_int("num_segments", num_segments)

    def segments(self, waveform: torch.Tensor) -> torch.Tensor:
        """One mono waveform (samples,) at the model's rate → (S, T): zero-padded or cropped to S·T samples."""
        t = self.segment_length
        s = self.num_segments or max(1, math.ceil(waveform.shape[0] / t))
        out = torch.full((s * t,), float(self.padding_value), dtype=torch.float32)
        kept = waveform[: s * t]
        out[: kept.shape[0]] = kept
        return out.view(s, t)

    def __call__(
        self,
        raw_audio: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor | Sequence[float]],
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """``raw_audio``: one clip (samples,), a batch (B, samples), or a list of clips of any lengths, mono, at
        ``sampling_rate`` Hz (the model's rate when not given). Returns ``{"input_values": (B, S, T)}``."""
        clips = self._as_clips(raw_audio)
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            _positive_int("sampling_rate", sampling_rate)
            clips = [AF.resample(clip, sampling_rate, self.sampling_rate) for clip in clips]
        cut = [self.segments(clip) for clip in clips]
        counts = sorted({c.shape[0] for c in cut})
        if len(counts) > 1:
            raise ValueError(
                f"clips of different lengths give different segment counts {counts}; pass them one at a time "
                f"or set num_segments (the training job's value pads/crops every clip to the same count)"
            )
        return BatchFeature({"input_values": torch.stack(cut).numpy()}, tensor_type=return_tensors)

    @staticmethod
    def _as_clips(raw_audio: Any) -> list[torch.Tensor]:
        if isinstance(raw_audio, (np.ndarray, torch.Tensor)):
            array = torch.as_tensor(np.asarray(raw_audio) if isinstance(raw_audio, np.ndarray) else raw_audio)
            if array.dim() == 1:
                items = [array]
            elif array.dim() == 2:
                items = list(array)
            else:
                raise ValueError(
                    f"raw_audio must be one clip (samples,) or a batch (B, samples), got {tuple(array.shape)}"
                )
        elif isinstance(raw_audio, (list, tuple)) and raw_audio and not isinstance(raw_audio[0], (int, float)):
            items = [torch.as_tensor(np.asarray(clip)) for clip in raw_audio]
        elif isinstance(raw_audio, (list, tuple)) and raw_audio:
            items = [torch.as_tensor(raw_audio)]
        else:
            raise ValueError(f"raw_audio must be a waveform or a list of waveforms, got {type(raw_audio).__name__}")
        for clip in items:
            if clip.dim() != 1 or clip.shape[0] == 0:
                raise ValueError(
                    f"each clip must be a non-empty mono waveform (samples,), got shape {tuple(clip.shape)}"
                )
        return [clip.to(torch.float32) for clip in items]


# saving copies this file next to preprocessor_config.json and records it in auto_map (trust_remote_code=True)
AudioCNNFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
