"""Audio (GTZAN): decoded once with soundfile, mono, resampled, cut into fixed-length segments.

datasets 5 decodes an ``Audio`` column through torchcodec + FFmpeg; here the encoded bytes are read straight
from the Arrow table and decoded with ``soundfile`` (libsndfile: WAV, AU, FLAC, OGG, MP3), averaged over channels
and resampled with ``torchaudio.functional.resample``. A file that does not decode (GTZAN's jazz.00054.wav is
not a WAV file), or holds a NaN, is skipped, counted and logged.

Each split becomes one float32 tensor (N, S·T): every clip padded with zeros or cropped to S segments of T
samples, S = the median clip length in segments (rounded; GTZAN's 30 s clips give S = 10 for 3 s segments).
Training examples are the segments (only those that start inside the clip); evaluation examples are whole clips
as (S, T), so the model can average its segment logits into a clip-level prediction. The log-mel spectrogram is
left to the model.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from datasets import Dataset as HFDataset
from torch.utils.data import Dataset

from lsr_hf.data.items import StackedItems
from lsr_hf.data.load import AUDIO_COLUMN, LABEL_COLUMN, encoded_files
from lsr_hf.data.quality import DEFAULT_MAX_SKIPPED_FRACTION, check_skipped, skip_note

logger = logging.getLogger(__name__)

DECODE_BATCH_SIZE = 64


def read_audio(data: bytes | None, path: str | None, sample_rate: int) -> torch.Tensor:
    """One encoded file (its bytes, or else its path) as a mono float32 waveform at ``sample_rate``.

    Raises whatever soundfile raises for a file it cannot decode, and ``ValueError`` for one without samples or
    with a non-finite sample (NaN or inf: a float WAV can hold them, and one would make every loss NaN).
    """
    source: Any = io.BytesIO(data) if data is not None else path
    if source is None:
        raise ValueError("neither bytes nor a path")
    wave, native_rate = sf.read(source, dtype="float32", always_2d=True)  # (frames, channels)
    if wave.shape[0] == 0:
        raise ValueError("no samples")
    if not np.isfinite(wave).all():
        raise ValueError(f"{int((~np.isfinite(wave)).sum())} non-finite samples (NaN or inf)")
    mono = torch.from_numpy(wave.mean(axis=1, dtype=np.float32))
    if native_rate != sample_rate:
        mono = AF.resample(mono, native_rate, sample_rate)
    return mono


def native_sample_rate(ds: HFDataset, column: str = AUDIO_COLUMN, probe: int = 64) -> int:
    """The most common native sample rate (Hz) of the first ``probe`` files of ``ds[column]`` that soundfile can
    read (``data.sample_rate: null`` trains at this rate). ``ValueError`` if none of them can be read."""
    probed = ds.select_columns([column]).select(range(min(probe, len(ds)))).with_format("arrow")[:]
    data, paths = encoded_files(probed.column(column))
    rates: list[int] = []
    for blob, path in zip(data, paths):
        try:
            rates.append(int(sf.info(io.BytesIO(blob) if blob is not None else path).samplerate))
        except (RuntimeError, ValueError, OSError, TypeError):  # an undecodable file: decode_audio skips it
            continue
    if not rates:
        raise ValueError(f"none of the first {len(data)} audio files could be read to find their sample rate")
    values, counts = np.unique(rates, return_counts=True)
    return int(values[counts.argmax()])


@dataclass
class DecodedAudio:
    """The clips of one split: ``clips`` float32 (N, S·T), ``labels`` int64 (N,), ``lengths`` (N,) real
    samples per clip (at most S·T; the rest is zero padding), and the names of the files that were skipped."""

    clips: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor
    num_segments: int
    segment_length: int
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.clips.shape[0]


def decode_audio(
    ds: HFDataset,
    sample_rate: int,
    segment_seconds: float,
    column: str = AUDIO_COLUMN,
    label_column: str = LABEL_COLUMN,
    split: str = "train",
    max_skipped_fraction: float = DEFAULT_MAX_SKIPPED_FRACTION,
) -> DecodedAudio:
    """Decodes every clip of ``ds`` once (see the module docstring); undecodable files are skipped and logged, and
    more than ``max_skipped_fraction`` of them (or all) raises ``DataError`` (``lsr_hf.data.quality``).

    ``ds[column]`` holds encoded files as {bytes, path} structs (``datasets.Audio(decode=False)`` storage)
    or as binary; it is read through the Arrow table, never through ``datasets``' audio decoding.
    """
    segment_length = round(segment_seconds * sample_rate)
    if segment_length < 1:
        raise ValueError(f"segment_seconds={segment_seconds} is shorter than one sample at {sample_rate} Hz")
    waves: list[torch.Tensor] = []
    labels: list[int] = []
    skipped: list[str] = []
    table_view = ds.select_columns([column, label_column]).with_format("arrow")
    for start in range(0, len(ds), DECODE_BATCH_SIZE):
        batch = table_view[start : start + DECODE_BATCH_SIZE]
        data, paths = encoded_files(batch.column(column))
        for i, (blob, path, label) in enumerate(zip(data, paths, batch.column(label_column).to_pylist())):
            try:
                waves.append(read_audio(blob, path, sample_rate))
            except (RuntimeError, ValueError, OSError, TypeError) as err:  # LibsndfileError is a RuntimeError
                skipped.append(skip_note(start + i, path, err))
                continue
            labels.append(int(label))
    check_skipped(split, "audio files", skipped, len(ds), max_skipped_fraction)

    lengths = torch.tensor([len(w) for w in waves])
    num_segments = max(1, round(float(lengths.median()) / segment_length))
    total = num_segments * segment_length
    clips = torch.zeros((len(waves), total), dtype=torch.float32)
    for i in range(len(waves)):
        wave = waves[i][:total]
        clips[i, : len(wave)] = wave
        waves[i] = torch.empty(0)  # release each clip once copied: peak memory ~1x the decoded split, not 2x
    return DecodedAudio(
        clips=clips,
        labels=torch.tensor(labels, dtype=torch.long),
        lengths=lengths.clamp(max=total),
        num_segments=num_segments,
        segment_length=segment_length,
        skipped=skipped,
    )


class AudioSegmentDataset(Dataset):
    """Training examples: every non-overlapping ``segment_length`` segment of every clip (those that start
    inside the clip, so no segment is pure padding). Item: ``{"input_values": float32 (T,), "labels": int}``."""

    def __init__(self, decoded: DecodedAudio) -> None:
        self.decoded = decoded
        t = decoded.segment_length
        per_clip = [min(decoded.num_segments, math.ceil(int(n) / t)) for n in decoded.lengths]
        self.index = torch.tensor([(c, s) for c, count in enumerate(per_clip) for s in range(count)], dtype=torch.long)

    def __len__(self) -> int:
        return self.index.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip, segment = (int(v) for v in self.index[index])
        t = self.decoded.segment_length
        return {
            "input_values": self.decoded.clips[clip, segment * t : (segment + 1) * t],
            "labels": int(self.decoded.labels[clip]),
        }

    def __getitems__(self, indices: Sequence[int]) -> StackedItems:
        """A batch of segments with one gather (``DataLoader`` calls this with a whole batch of indices)."""
        d = self.decoded
        clip, segment = self.index[torch.as_tensor(indices, dtype=torch.long)].unbind(1)
        segments = d.clips.view(len(d), d.num_segments, d.segment_length)[clip, segment]
        return StackedItems("input_values", segments, d.labels[clip])


class AudioClipDataset(Dataset):
    """Evaluation examples: whole clips cut into segments. Item: ``{"input_values": float32 (S, T),
    "labels": int}``; the model averages its S segment logits into one clip prediction."""

    def __init__(self, decoded: DecodedAudio) -> None:
        self.decoded = decoded

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, index: int) -> dict[str, Any]:
        d = self.decoded
        return {
            "input_values": d.clips[index].view(d.num_segments, d.segment_length),
            "labels": int(d.labels[index]),
        }

    def __getitems__(self, indices: Sequence[int]) -> StackedItems:
        """A batch of clips with one gather."""
        d = self.decoded
        index = torch.as_tensor(indices, dtype=torch.long)
        clips = d.clips[index].view(len(index), d.num_segments, d.segment_length)
        return StackedItems("input_values", clips, d.labels[index])


class AudioCollator:
    """Stacks audio items into ``{"input_values": float32 (B, T) or (B, S, T), "labels": int64 (B,)}``."""

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if isinstance(features, StackedItems):
            return {"input_values": features.inputs, "labels": features.labels.to(torch.long)}
        return {
            "input_values": torch.stack([torch.as_tensor(f["input_values"], dtype=torch.float32) for f in features]),
            "labels": torch.tensor([int(f["labels"]) for f in features], dtype=torch.long),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
