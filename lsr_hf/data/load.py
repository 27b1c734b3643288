"""Loading a dataset's raw splits, from the Hub or a local copy, into one standard shape.

``load_raw_splits`` returns a ``DatasetDict`` with exactly ``train``/``validation``/``test``, each with two
columns: the input (``image``, a ``datasets.Image``; or ``audio``, undecoded ``{bytes, path}``) and ``labels``
(a ``ClassLabel`` with the spec's class names). Missing splits are carved from ``train``, stratified and seeded.
Nothing is decoded here: images are decoded by ``lsr_hf.data.image`` and audio by ``lsr_hf.data.audio``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Image, Value, load_dataset

from lsr_hf.data.config import DataConfig
from lsr_hf.data.demo import load_demo
from lsr_hf.data.specs import DatasetSpec, get_spec

logger = logging.getLogger(__name__)

IMAGE_COLUMN = "image"
AUDIO_COLUMN = "audio"
LABEL_COLUMN = "labels"
SPLITS = ("train", "validation", "test")
# an image folder gets datasets' imagefolder columns; an audio folder is given the same shape
FOLDER_LABEL_COLUMN = "label"
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
# split names as written in folder and file names (the keywords datasets itself recognises)
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


def load_raw_splits(cfg: DataConfig) -> DatasetDict:
    """The dataset of ``cfg`` as ``train``/``validation``/``test`` with an input column and ``labels``.

    Sources: the Hub (``cfg.path`` unset), a parquet file (all of it is ``train``), a folder of parquet files
    (splits from file or folder names, as on the Hub), an image folder (datasets' ``imagefolder``) or an audio
    folder of ``[<split>/]<genre>/<file>.wav``. A missing ``test`` split takes ``test_fraction`` of ``train``, a
    missing ``validation`` split ``validation_fraction`` of it (both stratified by label, seeded by
    ``split_seed``); then ``max_train_samples``/``max_eval_samples`` keep seeded random subsets.

    Raises:
        ValueError: a missing column (naming ``data.input_column``/``data.label_column`` and the columns that
            exist), labels that are neither integer class ids nor class names of the dataset, an input column
            that does not hold images/audio, or a ``path`` that holds no data.
    """
    spec = get_spec(cfg.name)
    raw, source, (default_input, default_label) = _load_source(cfg, spec)
    splits = _standard_splits(raw, source)
    input_column = cfg.input_column or default_input
    label_column = cfg.label_column or default_label
    splits = {
        name: _standardize(ds, spec, input_column, label_column, f"the {name} split of {source}")
        for name, ds in splits.items()
    }
    splits = _carve_missing(splits, cfg, source)
    splits["train"] = _subsample(splits["train"], cfg.max_train_samples, cfg.split_seed)
    for name in ("validation", "test"):
        splits[name] = _subsample(splits[name], cfg.max_eval_samples, cfg.split_seed)
    return DatasetDict({name: splits[name] for name in SPLITS})


# ---------------------------------------------------------------------------------------------------- sources


def _load_source(cfg: DataConfig, spec: DatasetSpec) -> tuple[DatasetDict, str, tuple[str, str]]:
    """(raw splits, a description of the source for messages, default (input, label) columns)."""
    spec_columns = (spec.input_column, spec.label_column)
    if spec.hub_id is None:
        return load_demo(), f"the {spec.name} dataset", spec_columns
    if cfg.path is None:
        logger.info("loading %s from the HuggingFace Hub", spec.hub_id)
        return load_dataset(spec.hub_id), spec.hub_id, spec_columns

    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise ValueError(f"path {cfg.path!r} does not exist")
    if path.is_file():
        if path.suffix.lower() != ".parquet":
            raise ValueError(f"path must be a .parquet file or a folder, got {cfg.path!r}")
        return load_dataset("parquet", data_files={"train": str(path)}), str(path), spec_columns
    if next(path.rglob("*.parquet"), None) is not None:
        return load_dataset("parquet", data_dir=str(path)), str(path), spec_columns
    if spec.modality == "image":
        return load_dataset("imagefolder", data_dir=str(path)), str(path), (IMAGE_COLUMN, FOLDER_LABEL_COLUMN)
    return load_audio_folder(path), str(path), (AUDIO_COLUMN, FOLDER_LABEL_COLUMN)


def load_audio_folder(root: str | Path) -> DatasetDict:
    """An audio folder ``[<split>/]<class>/<file>`` as a ``DatasetDict`` of ``audio`` ({bytes, path}) and
    ``label`` (the class folder's name).

    The bytes are stored undecoded (no ``datasets.Audio``, which would need torchcodec); a file that does not
    decode is found, skipped and counted later by ``lsr_hf.data.audio``. A folder above the class folder named
    like a split (train, validation/valid/val/dev, test) gives the split; files without one are ``train``.
    """
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise ValueError(
            f"path {str(root)!r} holds no parquet files and no audio files ({', '.join(AUDIO_EXTENSIONS)})"
        )
    rows: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {AUDIO_COLUMN: [], FOLDER_LABEL_COLUMN: []})
    for file in files:
        rel = file.relative_to(root)
        if len(rel.parts) < 2:
            raise ValueError(
                f"path {str(root)!r}: audio file {rel.as_posix()!r} must be in a folder named after its class "
                "(<genre>/<file>)"
            )
        # the first folder above the class folder that is named like a split gives the split
        split = next((SPLIT_ALIASES[p.lower()] for p in rel.parts[:-2] if p.lower() in SPLIT_ALIASES), "train")
        rows[split][AUDIO_COLUMN].append({"bytes": file.read_bytes(), "path": rel.as_posix()})
        rows[split][FOLDER_LABEL_COLUMN].append(file.parent.name)
    features = Features(
        {AUDIO_COLUMN: {"bytes": Value("binary"), "path": Value("string")}, FOLDER_LABEL_COLUMN: Value("string")}
    )
    return DatasetDict({split: Dataset.from_dict(data, features=features) for split, data in rows.items()})


def _standard_splits(raw: DatasetDict, source: str) -> dict[str, Dataset]:
    splits: dict[str, Dataset] = {}
    for name, ds in raw.items():
        key = SPLIT_ALIASES.get(str(name).lower())
        if key is None:
            logger.info("ignoring split %r of %s", name, source)
            continue
        if key in splits:
            raise ValueError(f"{source} has more than one {key} split: {', '.join(map(str, raw))}")
        splits[key] = ds
    if "train" not in splits:
        raise ValueError(f"{source} has no train split; its splits are: {', '.join(map(str, raw)) or 'none'}")
    return splits


# ---------------------------------------------------------------------------------------------------- columns


def _standardize(ds: Dataset, spec: DatasetSpec, input_column: str, label_column: str, where: str) -> Dataset:
    """Keep the input (renamed to ``image``/``audio``) and the labels (as ``labels``, a ClassLabel)."""
    for key, column in (("data.input_column", input_column), ("data.label_column", label_column)):
        if column not in ds.column_names:
            raise ValueError(
                f"column {column!r} ({key}) not found in {where}; its columns are: {', '.join(ds.column_names)}. "
                f"Set {key} to the column that holds the {'labels' if key.endswith('label_column') else spec.modality}."
            )
    ids = label_ids(ds, label_column, spec.class_names, where)
    ds = _check_input(ds.select_columns([input_column]), input_column, spec.modality, where)
    canonical = IMAGE_COLUMN if spec.modality == "image" else AUDIO_COLUMN
    if input_column != canonical:
        ds = ds.rename_column(input_column, canonical)
    return ds.add_column(LABEL_COLUMN, ids, feature=ClassLabel(names=list(spec.class_names)))


def label_ids(ds: Dataset, column: str, class_names: tuple[str, ...], where: str = "the dataset") -> np.ndarray:
    """Labels of ``ds[column]`` as int64 class ids into ``class_names``.

    Accepts a ``ClassLabel`` (its names are matched to ``class_names``), integer ids in [0, K) or strings that
    are class names; anything else (floats, booleans, unknown names, missing labels) is a ``ValueError``.
    """
    feature = ds.features[column]
    values = ds.select_columns([column]).with_format("arrow")[:].column(column)
    what = f"column {column!r} (data.label_column) in {where}"
    if values.null_count:
        raise ValueError(f"{what} has {values.null_count} rows without a label")
    k = len(class_names)

    if isinstance(feature, ClassLabel):
        ids = np.asarray(values.to_numpy(), dtype=np.int64)
        if (ids < 0).any():
            raise ValueError(f"{what} has {int((ids < 0).sum())} rows without a label (-1)")
        if list(feature.names) == list(class_names):
            return ids
        unknown = [name for name in feature.names if name not in class_names]
        if unknown:
            raise ValueError(
                f"{what} has class names that are not classes of the dataset: {', '.join(unknown)}; "
                f"expected names among: {', '.join(class_names)}"
            )
        lookup = np.array([class_names.index(name) for name in feature.names], dtype=np.int64)
        return lookup[ids]

    pa_type = feature.pa_type if isinstance(feature, Value) else None
    if pa_type is not None and pa.types.is_integer(pa_type):
        ids = np.asarray(values.to_numpy(), dtype=np.int64)
        bad = np.unique(ids[(ids < 0) | (ids >= k)])
        if bad.size:
            raise ValueError(f"{what} must hold class ids in [0, {k}), got {bad[:10].tolist()}")
        return ids

    if pa_type is not None and (pa.types.is_string(pa_type) or pa.types.is_large_string(pa_type)):
        index = {name: i for i, name in enumerate(class_names)}
        strings = values.to_pylist()
        unknown = sorted(set(strings) - index.keys())
        if unknown:
            raise ValueError(
                f"{what} holds names that are not classes of the dataset: {', '.join(unknown[:10])}; "
                f"expected one of: {', '.join(class_names)}"
            )
        return np.array([index[s] for s in strings], dtype=np.int64)

    raise ValueError(f"{what} must hold integer class ids or class names (strings), got {feature}")


def _is_bytes(feature: Any) -> bool:
    """A raw encoded-file column: binary, or a {bytes, path} struct."""
    if isinstance(feature, Value):
        return pa.types.is_binary(feature.pa_type) or pa.types.is_large_binary(feature.pa_type)
    return isinstance(feature, dict) and "bytes" in feature and _is_bytes(feature["bytes"])


def _check_input(ds: Dataset, column: str, modality: str, where: str) -> Dataset:
    feature = ds.features[column]
    if modality == "image":
        if isinstance(feature, Image):
            return ds
        if _is_bytes(feature):
            return ds.cast_column(column, Image())
        expected = "images (a datasets.Image column, or {bytes, path} structs of encoded images)"
    else:
        if isinstance(feature, Audio):
            # undecoded {bytes, path}: datasets 5 decodes audio through torchcodec + FFmpeg, we use soundfile
            return ds.cast_column(column, Audio(sampling_rate=feature.sampling_rate, decode=False))
        if _is_bytes(feature):
            return ds
        expected = "audio (a datasets.Audio column, or {bytes, path} structs / binary of encoded audio files)"
    raise ValueError(f"column {column!r} (data.input_column) in {where} must hold {expected}, got {feature}")


# ----------------------------------------------------------------------------------------------------- splits


def _carve(ds: Dataset, size: int, seed: int, what: str) -> tuple[Dataset, Dataset]:
    """(rest, held out) with ``size`` examples held out, stratified by label."""
    try:
        parts = ds.train_test_split(test_size=size, stratify_by_column=LABEL_COLUMN, seed=seed)
    except ValueError as err:
        raise ValueError(
            f"cannot carve a stratified {what} split of {size} examples from {len(ds)} ({err}); "
            f"raise {what}_fraction or use more data"
        ) from err
    return parts["train"], parts["test"]


def _carve_missing(splits: dict[str, Dataset], cfg: DataConfig, source: str) -> dict[str, Dataset]:
    splits = dict(splits)
    n_train = len(splits["train"])  # fractions are of the training split as loaded
    for name, fraction in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction)):
        if name in splits:
            continue
        size = round(fraction * n_train)
        if size < 1:
            raise ValueError(f"{name}_fraction={fraction} of {n_train} training examples of {source} is empty")
        logger.info("%s has no %s split: holding out %d of its %d training examples", source, name, size, n_train)
        splits["train"], splits[name] = _carve(splits["train"], size, cfg.split_seed, name)
    return splits


def _subsample(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of ``n`` examples, in the original order (``ds`` itself if ``n`` is None or >= len)."""
    if n is None or n >= len(ds):
        return ds
    keep = np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False))
    return ds.select(keep)
