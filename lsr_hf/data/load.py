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
from lsr_hf.data.errors import LOCAL_LAYOUTS, DataSourceError, hub_unreachable, nothing_usable
from lsr_hf.data.specs import DatasetSpec, get_spec

logger = logging.getLogger(__name__)

IMAGE_COLUMN = "image"
AUDIO_COLUMN = "audio"
LABEL_COLUMN = "labels"
SPLITS = ("train", "validation", "test")
# an image folder gets datasets' imagefolder columns; an audio folder is given the same shape
FOLDER_LABEL_COLUMN = "label"
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# columns tried, in order, when a dataset without a built-in spec does not say which column is which
INPUT_COLUMN_NAMES = ("image", "img", "audio", "file", "bytes")
LABEL_COLUMN_NAMES = ("label", "labels", "class", "target", "genre", "category")
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

    Sources: the Hub (``cfg.path`` unset: the built-in dataset's id, or ``cfg.name`` as a Hub id), a parquet file
    (all of it is ``train``), a folder of parquet files (splits from file or folder names, as on the Hub), an image
    folder (datasets' ``imagefolder``) or an audio folder of ``[<split>/]<class>/<file>``. For a built-in dataset
    the columns and class names are its spec's; for any other the modality comes from the input column's feature
    (``Image``/``Audio``) or the folder's file types, and the class names from the label column (a ``ClassLabel``'s
    names, the sorted class names found, or ``"0"``..``"K-1"`` for integer ids). A missing ``test`` split takes
    ``test_fraction`` of ``train``, a missing ``validation`` split ``validation_fraction`` of it (both stratified by
    label, seeded by ``split_seed``); then ``max_train_samples``/``max_eval_samples`` keep seeded random subsets.

    Raises:
        DataSourceError: (a ``ValueError``) the Hub could not be reached or has no such dataset, or ``path``
            does not exist or holds no data.
        ValueError: a missing column (naming ``data.input_column``/``data.label_column`` and the columns that
            exist), labels that are neither integer class ids nor class names of the dataset, or an input column
            that does not hold images/audio.
    """
    spec = get_spec(cfg.name) if cfg.builtin else None
    raw, source, (default_input, default_label), modality = _load_source(cfg, spec)
    splits = _standard_splits(raw, source)
    if spec is not None:
        modality, class_names = spec.modality, spec.class_names
        input_column = cfg.input_column or default_input
        label_column = cfg.label_column or default_label
    else:
        input_column, modality = find_input_column(splits["train"], cfg.input_column, modality, source)
        label_column = find_label_column(splits["train"], cfg.label_column, input_column, source)
        class_names = find_class_names(splits, label_column, source)
    splits = {
        name: _standardize(ds, modality, class_names, input_column, label_column, f"the {name} split of {source}")
        for name, ds in splits.items()
    }
    if spec is None:  # classes read from the data: one that only an evaluation split has would be a class for free
        check_classes_in_train(splits, class_names, source)
    splits = _carve_missing(splits, cfg, source)
    splits["train"] = _subsample(splits["train"], cfg.max_train_samples, cfg.split_seed)
    for name in ("validation", "test"):
        splits[name] = _subsample(splits[name], cfg.max_eval_samples, cfg.split_seed)
    return DatasetDict({name: splits[name] for name in SPLITS})


def encoded_files(column: pa.Array | pa.ChunkedArray) -> tuple[list[bytes | None], list[str | None]]:
    """(bytes, paths) of an input column read through Arrow: ``{bytes, path}`` structs (``datasets.Image`` /
    ``Audio(decode=False)`` storage) or plain binary (no paths)."""
    files = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_struct(files.type):
        return files.field("bytes").to_pylist(), files.field("path").to_pylist()
    return files.to_pylist(), [None] * len(files)


# ---------------------------------------------------------------------------------------------------- sources


def _load_source(
    cfg: DataConfig, spec: DatasetSpec | None
) -> tuple[DatasetDict, str, tuple[str | None, str | None], str | None]:
    """(raw splits, a description of the source for messages, default (input, label) columns, the modality when
    the source tells it (a folder of images or audio files), else None)."""
    spec_columns = (spec.input_column, spec.label_column) if spec is not None else (None, None)
    if spec is not None and spec.hub_id is None:
        return load_demo(), f"the {spec.name} dataset", spec_columns, spec.modality
    if cfg.path is None:
        hub_id = spec.hub_id if spec is not None else cfg.name
        logger.info("loading %s from the HuggingFace Hub", hub_id)
        try:
            return load_dataset(hub_id), hub_id, spec_columns, None
        except OSError as err:  # ConnectionError (offline, no network), DatasetNotFoundError, HfHubHTTPError (401/403)
            raise hub_unreachable(hub_id, err) from err

    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataSourceError(f"path {cfg.path!r} does not exist", "no such file or folder", f"use {LOCAL_LAYOUTS}")
    if path.is_file():
        if path.suffix.lower() != ".parquet":
            raise DataSourceError(
                f"path must be a .parquet file or a folder, got {cfg.path!r}", "not a parquet file", f"use {LOCAL_LAYOUTS}"
            )
        return load_dataset("parquet", data_files={"train": str(path)}), str(path), spec_columns, None
    if next(path.rglob("*.parquet"), None) is not None:
        return load_dataset("parquet", data_dir=str(path)), str(path), spec_columns, None
    modality = spec.modality if spec is not None else folder_modality(path)
    if modality == "image":
        return load_dataset("imagefolder", data_dir=str(path)), str(path), (IMAGE_COLUMN, FOLDER_LABEL_COLUMN), "image"
    return load_audio_folder(path), str(path), (AUDIO_COLUMN, FOLDER_LABEL_COLUMN), "audio"


def _files(root: Path, extensions: tuple[str, ...]):
    return (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def folder_modality(root: Path) -> str:
    """``"image"`` or ``"audio"``: the kind of files a folder without parquet files holds (the more numerous)."""
    images = sum(1 for _ in _files(root, IMAGE_EXTENSIONS))
    clips = sum(1 for _ in _files(root, AUDIO_EXTENSIONS))
    if images == clips == 0:
        raise nothing_usable(
            str(root),
            f"no parquet, image ({', '.join(IMAGE_EXTENSIONS)}) or audio ({', '.join(AUDIO_EXTENSIONS)}) files in it",
        )
    return "image" if images >= clips else "audio"


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
        raise DataSourceError(
            f"path {str(root)!r} holds no parquet files and no audio files ({', '.join(AUDIO_EXTENSIONS)})",
            "no usable files in it",
            f"point data.path at {LOCAL_LAYOUTS}",
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


def find_input_column(ds: Dataset, given: str | None, modality: str | None, source: str) -> tuple[str, str]:
    """(input column, ``"image"``/``"audio"``) of a dataset without a built-in spec: ``given`` (data.input_column)
    or the first column with an ``Image``/``Audio`` feature, else the first column named like an input
    (``INPUT_COLUMN_NAMES``) that holds encoded files. The modality is the feature's, else ``modality`` (what the
    folder held), else guessed from the file extension of the column's first path."""
    if given is not None:
        candidates = [given]
    else:
        typed = [c for c, f in ds.features.items() if isinstance(f, (Image, Audio))]
        named = [c for c in INPUT_COLUMN_NAMES if c in ds.column_names and _is_bytes(ds.features[c])]
        candidates = typed + named
    for column in candidates:
        if column not in ds.column_names:
            break
        feature = ds.features[column]
        if isinstance(feature, Image):
            return column, "image"
        if isinstance(feature, Audio):
            return column, "audio"
        if _is_bytes(feature):
            kind = modality or _modality_from_paths(ds, column)
            if kind is not None:
                return column, kind
    raise ValueError(
        f"data.input_column: no column of {source} is known to hold images or audio"
        + (f" ({given!r} is not one)" if given else "")
        + f"; its columns are: {', '.join(ds.column_names)} ({', '.join(f'{c}: {f}' for c, f in ds.features.items())}). "
        "Set data.input_column to a column of datasets.Image / datasets.Audio features, or of {bytes, path} "
        "structs whose paths end in an image or audio extension."
    )


def _modality_from_paths(ds: Dataset, column: str) -> str | None:
    feature = ds.features[column]
    if not (isinstance(feature, dict) and "path" in feature) or len(ds) == 0:
        return None
    paths = ds.select_columns([column]).select(range(min(len(ds), 16))).with_format("arrow")[:].column(column)
    for path in paths.combine_chunks().field("path").to_pylist():
        suffix = Path(path or "").suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            return "image"
        if suffix in AUDIO_EXTENSIONS:
            return "audio"
    return None


def find_label_column(ds: Dataset, given: str | None, input_column: str, source: str) -> str:
    """``given`` (data.label_column), else the first ``ClassLabel`` column, else the first column named like a
    label (``LABEL_COLUMN_NAMES``)."""
    if given is not None:
        return given
    for column, feature in ds.features.items():
        if isinstance(feature, ClassLabel) and column != input_column:
            return column
    for column in LABEL_COLUMN_NAMES:
        if column in ds.column_names and column != input_column:
            return column
    raise ValueError(
        f"data.label_column: no column of {source} is known to hold the labels; its columns are: "
        f"{', '.join(ds.column_names)}. Set data.label_column to the column of class ids or class names "
        "(an image or audio folder needs one sub-folder per class)."
    )


def find_class_names(splits: dict[str, Dataset], column: str, source: str) -> tuple[str, ...]:
    """The classes of a dataset without a built-in spec: the training split's ``ClassLabel`` names; else the
    sorted distinct strings over all splits; else ``"0"``..``"K-1"`` for integer ids (K = the largest id + 1)."""
    train = splits["train"]
    if column not in train.column_names:
        raise ValueError(
            f"column {column!r} (data.label_column) not found in the train split of {source}; its columns are: "
            f"{', '.join(train.column_names)}. Set data.label_column to the column that holds the labels."
        )
    feature = train.features[column]
    if isinstance(feature, ClassLabel):
        names = tuple(feature.names)
    else:
        pa_type = feature.pa_type if isinstance(feature, Value) else None
        values = [
            v for ds in splits.values() if column in ds.column_names for v in ds.unique(column) if v is not None
        ]
        if pa_type is not None and pa.types.is_integer(pa_type):
            if min(values, default=0) < 0:
                raise ValueError(f"column {column!r} (data.label_column) of {source} has negative class ids")
            names = tuple(str(i) for i in range(max(values, default=-1) + 1))
        elif pa_type is not None and (pa.types.is_string(pa_type) or pa.types.is_large_string(pa_type)):
            names = tuple(sorted(set(values)))
        else:
            raise ValueError(
                f"column {column!r} (data.label_column) of {source} must hold integer class ids or class names "
                f"(strings), got {feature}"
            )
    if len(names) < 2:
        raise ValueError(
            f"column {column!r} (data.label_column) of {source} must hold at least 2 classes, got {list(names)}"
        )
    return names


def _standardize(
    ds: Dataset, modality: str, class_names: tuple[str, ...], input_column: str, label_column: str, where: str
) -> Dataset:
    """Keep the input (renamed to ``image``/``audio``) and the labels (as ``labels``, a ClassLabel)."""
    for key, column in (("data.input_column", input_column), ("data.label_column", label_column)):
        if column not in ds.column_names:
            raise ValueError(
                f"column {column!r} ({key}) not found in {where}; its columns are: {', '.join(ds.column_names)}. "
                f"Set {key} to the column that holds the {'labels' if key.endswith('label_column') else modality}."
            )
    ids = label_ids(ds, label_column, class_names, where)
    ds = _check_input(ds.select_columns([input_column]), input_column, modality, where)
    canonical = IMAGE_COLUMN if modality == "image" else AUDIO_COLUMN
    if input_column != canonical:
        ds = ds.rename_column(input_column, canonical)
    return ds.add_column(LABEL_COLUMN, ids, feature=ClassLabel(names=list(class_names)))


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
        bad = np.unique(ids[ids >= len(feature.names)])
        if bad.size:  # a parquet file can hold any integer under a ClassLabel's names
            raise ValueError(f"{what} must hold class ids in [0, {len(feature.names)}), got {bad[:10].tolist()}")
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


def check_classes_in_train(splits: dict[str, Dataset], class_names: tuple[str, ...], source: str) -> None:
    """``ValueError`` when a class of ``class_names`` has examples in the validation or test split but none in
    ``train`` (``splits`` standardised, with ``labels``): the model could never learn it, yet it would count as a
    class (an image folder's ``test/<class>/`` that ``train/`` lacks)."""
    in_train = set(np.unique(np.asarray(splits["train"][LABEL_COLUMN])).tolist())
    for name in ("validation", "test"):
        if name not in splits:
            continue
        missing = sorted(set(np.unique(np.asarray(splits[name][LABEL_COLUMN])).tolist()) - in_train)
        if missing:
            shown = ", ".join(repr(class_names[i]) for i in missing[:10])
            raise ValueError(
                f"the {name} split of {source} has examples of {len(missing)} class(es) that the train split has "
                f"none of: {shown}; a class never seen in training cannot be learned. Add training examples of it, "
                f"or remove it from the {name} split"
            )


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


def fold_indices(labels: np.ndarray, num_folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held out): the row indices outside and inside fold ``fold`` of a stratified k-fold partition.

    scikit-learn's ``StratifiedKFold(num_folds, shuffle=True, random_state=seed)``: each class is dealt evenly over
    the folds, and over ``fold = 0 .. num_folds - 1`` the held-out indices cover every row exactly once.
    """
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    rest, held_out = list(folds.split(np.zeros(len(labels)), labels))[fold]
    return np.sort(rest), np.sort(held_out)


def _carve_fold(ds: Dataset, cfg: DataConfig, source: str) -> tuple[Dataset, Dataset]:
    """(rest, test) for ``data.num_folds``: fold ``data.fold`` of the training split is the test split."""
    labels = np.asarray(ds[LABEL_COLUMN])
    present = np.bincount(labels)
    smallest = int(present[present > 0].min()) if present.any() else 0
    if smallest < cfg.num_folds:
        raise ValueError(
            f"data.num_folds={cfg.num_folds} needs at least {cfg.num_folds} examples of every class, but a class of "
            f"{source} has only {smallest}; lower data.num_folds"
        )
    rest, held_out = fold_indices(labels, cfg.num_folds, cfg.fold, cfg.split_seed)
    logger.info(
        "%s: fold %d of %d is the test split (%d of its %d examples)", source, cfg.fold, cfg.num_folds,
        len(held_out), len(labels),
    )
    return ds.select(rest), ds.select(held_out)


def _carve_missing(splits: dict[str, Dataset], cfg: DataConfig, source: str) -> dict[str, Dataset]:
    splits = dict(splits)
    n_train = len(splits["train"])  # fractions are of the training split as loaded
    if cfg.num_folds is not None:
        if "test" in splits:
            raise ValueError(
                f"data.num_folds: {source} has its own test split; k-fold cross-validation carves the test split "
                "from the training data, so use it on a dataset without one (or set data.num_folds to null)"
            )
        splits["train"], splits["test"] = _carve_fold(splits["train"], cfg, source)
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
