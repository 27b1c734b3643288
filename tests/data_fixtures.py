"""Tiny datasets written in each Hub layout, for tests (no network).

Each ``write_*`` function writes into ``directory`` and returns the path to put in ``DataConfig.path``. The data
is learnable (each class has its own colour / tone) so end-to-end tests can check that training makes progress.
Parquet files carry the same columns and features as the Hub copies; audio is written as a plain
``{bytes, path}`` struct (optionally tagged as ``datasets.Audio`` in the schema metadata, as on the Hub) without
going through ``datasets.Audio`` encoding, which would import torchcodec.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from lsr_hf.data.specs import get_spec

# the folder that holds the parquet files in each Hub repository
HUB_PARQUET_FOLDER = {"cifar10": "plain_text", "cifar100": "cifar100", "cinic10": "data", "gtzan": "data"}
CIFAR100_COARSE = 20
CORRUPT_BYTES = b"this is not an audio file"


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of a uint8 (H, W, 3) or (H, W) array."""
    buffer = io.BytesIO()
    PILImage.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def class_images(num_classes: int, n_per_class: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, size, size, 3), class by class, each class a distinct colour plus noise; and labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    hue = labels / num_classes * 2 * np.pi
    colour = 128 + 90 * np.stack([np.cos(hue), np.cos(hue + 2.1), np.cos(hue + 4.2)], axis=1)  # (N, 3)
    noise = rng.normal(0, 25, size=(len(labels), size, size, 3))
    images = np.clip(colour[:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels


def write_image_parquet(
    directory: str | Path,
    spec_name: str,
    n_per_class: int,
    size: int = 32,
    splits: tuple[str, ...] | None = None,
    seed: int = 0,
) -> Path:
    """A Hub-layout parquet copy of an image dataset: ``<dir>/<spec>/<folder>/<split>-00000-of-00001.parquet``
    with the spec's columns (``datasets.Image`` input, ``ClassLabel`` label; CIFAR-100 also ``coarse_label``),
    ``n_per_class`` images per class in each of ``splits`` (default: the spec's Hub splits)."""
    spec = get_spec(spec_name)
    root = Path(directory) / spec_name
    folder = root / HUB_PARQUET_FOLDER[spec_name]
    folder.mkdir(parents=True, exist_ok=True)
    features = {spec.input_column: Image(), spec.label_column: ClassLabel(names=list(spec.class_names))}
    if spec_name == "cifar100":
        features["coarse_label"] = ClassLabel(names=[f"superclass_{i}" for i in range(CIFAR100_COARSE)])
    for i, split in enumerate(splits or spec.splits):
        images, labels = class_images(spec.num_classes, n_per_class, size, seed + i)
        columns = {
            spec.input_column: [{"bytes": png_bytes(im), "path": f"{split}_{j}.png"} for j, im in enumerate(images)],
            spec.label_column: labels.tolist(),
        }
        if spec_name == "cifar100":
            columns["coarse_label"] = (labels % CIFAR100_COARSE).tolist()
        Dataset.from_dict(columns, features=Features(features)).to_parquet(
            str(folder / f"{split}-00000-of-00001.parquet")
        )
    return root


def write_image_folder(
    directory: str | Path,
    spec_name: str,
    n_per_class: int,
    size: int = 32,
    splits: tuple[str, ...] = ("train", "test"),
    seed: int = 0,
) -> Path:
    """An image folder ``<dir>/<spec>_folder/<split>/<class name>/<i>.png`` (datasets' imagefolder layout)."""
    spec = get_spec(spec_name)
    root = Path(directory) / f"{spec_name}_folder"
    for i, split in enumerate(splits):
        images, labels = class_images(spec.num_classes, n_per_class, size, seed + i)
        for j, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / spec.class_names[label]
            folder.mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(image).save(folder / f"{j}.png")
    return root


def tone(label: int, seconds: float, sample_rate: int, rng: np.random.Generator, channels: int = 1) -> np.ndarray:
    """float32 (frames, channels): a sine whose pitch depends on ``label`` plus a little noise."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    freq = sample_rate / 40 * (label + 1)  # below Nyquist for 10 classes
    wave = 0.5 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) + 0.01 * rng.normal(size=t.shape)
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV encoding of a float waveform (frames,) or (frames, channels)."""
    buffer = io.BytesIO()
    sf.write(buffer, wave, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _gtzan_rows(split: str, n_per_class: int, seconds: float, sample_rate: int, corrupt: int, seed: int):
    """(genre, index, file bytes) rows; the first ``corrupt`` jazz clips (train only) are not audio."""
    rng = np.random.default_rng(seed)
    genres = get_spec("gtzan").class_names
    rows = []
    for label, genre in enumerate(genres):
        for j in range(n_per_class):
            broken = split == "train" and genre == "jazz" and j < corrupt
            data = CORRUPT_BYTES if broken else wav_bytes(tone(label, seconds, sample_rate, rng), sample_rate)
            rows.append((genre, label, j, data))
    return rows


def write_gtzan_parquet(
    directory: str | Path,
    n_per_class: int,
    seconds: float,
    sample_rate: int,
    corrupt: int = 1,
    splits: tuple[str, ...] = ("train", "validation", "test"),
    audio_feature: bool = True,
    seed: int = 0,
) -> Path:
    """A copy of ``confit/gtzan-parquet``: ``<dir>/gtzan/data/<split>-00000-of-00001.parquet`` with
    ``audio`` ({bytes (WAV), path}), ``genre`` (string) and ``label`` (ClassLabel).

    ``audio_feature=True`` tags the audio column as ``datasets.Audio`` in the schema metadata, as the Hub's
    files do (written with pyarrow, so torchcodec is never imported); ``False`` leaves a plain struct.
    The first ``corrupt`` jazz clips of the train split are undecodable, like GTZAN's jazz.00054.
    """
    spec = get_spec("gtzan")
    folder = Path(directory) / "gtzan" / HUB_PARQUET_FOLDER["gtzan"]
    folder.mkdir(parents=True, exist_ok=True)
    audio = Audio(sampling_rate=sample_rate) if audio_feature else {"bytes": Value("binary"), "path": Value("string")}
    features = Features({"audio": audio, "genre": Value("string"), "label": ClassLabel(names=list(spec.class_names))})
    for i, split in enumerate(splits):
        rows = _gtzan_rows(split, n_per_class, seconds, sample_rate, corrupt, seed + i)
        table = pa.table(
            {
                "audio": [{"bytes": data, "path": f"{genre}.{j:05d}.wav"} for genre, _, j, data in rows],
                "genre": [genre for genre, _, _, _ in rows],
                "label": [label for _, label, _, _ in rows],
            },
            schema=features.arrow_schema,
        )
        pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
    return folder.parent


def write_gtzan_folder(
    directory: str | Path,
    n_per_class: int,
    seconds: float,
    sample_rate: int,
    corrupt: int = 1,
    seed: int = 0,
) -> Path:
    """The full-set layout ``<dir>/gtzan_full/genres_original/<genre>/<genre>.000NN.wav`` (no splits); the
    first ``corrupt`` jazz files are undecodable."""
    root = Path(directory) / "gtzan_full"
    for genre, _, j, data in _gtzan_rows("train", n_per_class, seconds, sample_rate, corrupt, seed):
        folder = root / "genres_original" / genre
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{genre}.{j:05d}.wav").write_bytes(data)
    return root
