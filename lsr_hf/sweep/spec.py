"""The sweep file: reading and checking it, and expanding its grids."""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lsr_hf.recipe import SECTIONS
from lsr_hf.sweep.common import (
    DOTTED_KEY,
    MAX_NAME_LENGTH,
    NAME_FIRST_KEYS,
    RUN_OWNED_KEYS,
    SWEEP_KEYS,
    UNSAFE_NAME_CHARS,
    SweepError,
)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file. ``recipe`` is already resolved against the sweep file's folder."""

    path: str
    recipe: str
    output_dir: str
    seeds: tuple[int, ...] = (0,)
    folds: int | None = None  # k-fold cross-validation: every configuration × seed runs once per fold
    set: tuple[str, ...] = ()
    grids: tuple[dict[str, tuple[Any, ...]], ...] = ()


def load_sweep(path: str | os.PathLike[str]) -> SweepSpec:
    """Reads and validates a sweep file (format in the module docstring); raises :class:`SweepError` naming the key."""
    shown = str(path)
    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{shown}: sweep file not found") from None
    except yaml.YAMLError as err:
        raise SweepError(f"{shown}: not valid YAML: {err}") from err
    if not isinstance(content, dict):
        raise SweepError(f"{shown}: a sweep file must be a mapping with the keys {', '.join(SWEEP_KEYS)}")
    for key in content:
        if key not in SWEEP_KEYS:
            hint = difflib.get_close_matches(str(key), SWEEP_KEYS, n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            raise SweepError(f"{shown}: unknown key {key!r}{suggestion}; a sweep file has: {', '.join(SWEEP_KEYS)}")

    recipe = content.get("recipe")
    if not isinstance(recipe, str) or not recipe.strip():
        raise SweepError(
            f"{shown}: recipe must be the path of a recipe file (relative to the sweep file), got {recipe!r}"
        )
    recipe_path = os.path.normpath(os.path.join(os.path.dirname(shown), recipe))
    if not Path(recipe_path).is_file():
        raise SweepError(f"{shown}: recipe: {recipe_path} not found (the path is relative to the sweep file)")

    output_dir = content.get("output_dir", os.path.join("outputs", "sweeps", Path(shown).stem))
    if not isinstance(output_dir, str) or not output_dir.strip():
        raise SweepError(f"{shown}: output_dir must be a folder path, got {output_dir!r}")

    seeds = content.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        raise SweepError(f"{shown}: seeds must be a non-empty list of integers, e.g. [0, 1, 2], got {seeds!r}")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SweepError(f"{shown}: seeds: every seed must be an integer >= 0, got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"{shown}: seeds: {seeds} lists a seed twice")

    folds = content.get("folds")
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
        raise SweepError(
            f"{shown}: folds must be an integer >= 2 (k-fold cross-validation: each run gets data.num_folds=<folds> "
            f"and one data.fold) or be left out, got {folds!r}"
        )

    fixed = content.get("set", [])
    if not isinstance(fixed, list):
        raise SweepError(f"{shown}: set must be a list of 'section.key=value' strings, got {_kind(fixed)}")
    fixed_keys: list[str] = []
    for item in fixed:
        if not isinstance(item, str) or "=" not in item:
            raise SweepError(f"{shown}: set: expected 'section.key=value' strings, e.g. loss.alpha=0.3, got {item!r}")
        key = item.partition("=")[0].strip()
        _check_key(key, f"{shown}: set: {item!r}")
        if key in fixed_keys:
            raise SweepError(f"{shown}: set: {key} is set twice")
        fixed_keys.append(key)

    grids_raw = content.get("grids")
    grids: list[dict[str, tuple[Any, ...]]] = []
    if grids_raw is not None:
        if not isinstance(grids_raw, list) or not grids_raw:
            raise SweepError(
                f"{shown}: grids must be a non-empty list of mappings 'section.key: [values...]' (or be left out), "
                f"got {grids_raw!r}"
            )
        for index, grid in enumerate(grids_raw):
            where = f"{shown}: grids[{index}]"
            if not isinstance(grid, dict) or not grid:
                raise SweepError(f"{where} must be a non-empty mapping 'section.key: [values...]', got {grid!r}")
            checked: dict[str, tuple[Any, ...]] = {}
            for key, values in grid.items():
                if not isinstance(key, str):
                    raise SweepError(f"{where}: keys must be 'section.key' strings, got {key!r}")
                _check_key(key, f"{where}: {key}")
                if key in fixed_keys:
                    raise SweepError(f"{where}: {key} is also in set:; set it in one place only")
                if not isinstance(values, list) or not values:
                    raise SweepError(
                        f"{where}: {key} must be a non-empty list of values, e.g. [0.1, 0.5], got {values!r}"
                    )
                texts: list[str] = []
                for value in values:
                    if not _is_scalar(value):
                        raise SweepError(
                            f"{where}: {key}: grid values must be numbers, strings, booleans or null, got "
                            f"{_kind(value)} {value!r}; put structured values in set:"
                        )
                    text = yaml_text(value)
                    if text in texts:
                        raise SweepError(f"{where}: {key} lists {text} twice")
                    texts.append(text)
                checked[key] = tuple(values)
            grids.append(checked)

    return SweepSpec(
        path=shown,
        recipe=recipe_path,
        output_dir=output_dir,
        seeds=tuple(seeds),
        folds=folds,
        set=tuple(fixed),
        grids=tuple(grids),
    )


def _check_key(key: str, where: str) -> None:
    if not DOTTED_KEY.fullmatch(key):
        raise SweepError(f"{where}: the key must be 'section.name', e.g. loss.alpha")
    section = key.split(".")[0]
    if section not in SECTIONS:
        hint = difflib.get_close_matches(section, SECTIONS, n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise SweepError(f"{where}: unknown section {section!r}{suggestion}; the sections are {', '.join(SECTIONS)}")
    if key in RUN_OWNED_KEYS:
        raise SweepError(
            f"{where}: {key} is set by the sweep for each run (output_dir: for the folder, seeds: for the seeds, "
            "folds: for the folds)"
        )


def _is_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    return isinstance(value, float) and math.isfinite(value)


def yaml_text(value: Any) -> str:
    """A scalar as YAML text that reads back as the same value (``'no'`` stays a string, 1.0e-05 a float)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")].rstrip()
    return text


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def expand_grids(grids: Sequence[Mapping[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """The configurations of all grids: each grid's cartesian product, united in order, duplicates dropped.

    Two configurations are the same when they set the same keys to the same YAML values (the key order does not
    matter). No grids give one empty configuration (the base recipe as it is).
    """
    if not grids:
        return [{}]
    configs: list[dict[str, Any]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for grid in grids:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            config = dict(zip(keys, values))
            identity = tuple(sorted((k, yaml_text(v)) for k, v in config.items()))
            if identity not in seen:
                seen.add(identity)
                configs.append(config)
    return configs


def run_name(overrides: Mapping[str, Any], seed: int, fold: int | None = None) -> str:
    """The folder name of one run: ``key=value`` pairs joined by commas, then ``fold=<fold>`` (k-fold sweeps only)
    and ``seed=<seed>``.

    ``data.name``, ``model.name`` and ``loss.method`` come first, the other keys in alphabetical order, so the name
    does not depend on the order of the sweep file. Characters outside ``[A-Za-z0-9._+-]`` in a value become ``-``
    and then, as for names longer than ``MAX_NAME_LENGTH``, an 8-character hash of the overrides is appended.
    """
    first = [k for k in NAME_FIRST_KEYS if k in overrides]
    keys = first + sorted(k for k in overrides if k not in NAME_FIRST_KEYS)
    parts, sanitised = [], False
    for key in keys:
        text = yaml_text(overrides[key])
        safe = UNSAFE_NAME_CHARS.sub("-", text)
        sanitised |= safe != text
        parts.append(f"{key}={safe}")
    replicate = ([["fold", int(fold)]] if fold is not None else []) + [["seed", int(seed)]]
    parts += [f"{key}={value}" for key, value in replicate]
    name = ",".join(parts)
    if sanitised or len(name) > MAX_NAME_LENGTH:
        identity = json.dumps([[k, yaml_text(overrides[k])] for k in sorted(overrides)] + replicate)
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: MAX_NAME_LENGTH - 9]}~{digest}"
    return name
