"""Sweeps: many training runs from one base recipe, then tables and plots of their results.

A sweep file (YAML) names a base recipe, the seeds, overrides shared by every run and grids of overrides::

    recipe: ../recipes/base/demo.yaml   # the base recipe, relative to THIS file (like a recipe's `extends:`)
    output_dir: outputs/sweeps/demo     # optional, relative to the working directory (like training.output_dir);
                                        # default outputs/sweeps/<sweep file name>
    seeds: [0, 1, 2]                    # optional, default [0]: every configuration is run once per seed
    set:                                # optional: `--set`-style overrides applied to every run (values are YAML)
      - training.num_train_epochs=5
      - training.save_strategy='no'     # quote yes/no/on/off, which YAML reads as booleans
    grids:                              # optional (default: the base recipe alone)
      - model.name: [resnet10t, mobilenetv2_050]
        loss.method: [ce, lsr]
      - model.name: [resnet10t, mobilenetv2_050]
        loss.method: [lsr_os]
        loss.alpha: [0.5, 0.9]
        loss.temperature: [2.0, 8.0]

Each grid is a mapping ``dotted.key: [values...]`` expanded as a cartesian product; the configurations of all grids
are united, in file order, and duplicates are dropped: first identical override sets, then — once every run's recipe
has been loaded — runs whose resolved recipes are identical. Grid values are YAML scalars; structured values go in
``set:``. The sweep owns ``training.output_dir`` and ``training.seed`` (use ``seeds:``), so neither may be set.

Every run's recipe is loaded and checked (:func:`lsr_hf.recipe.load_recipe`) before the first run starts. Runs are
ordered seed by seed (every configuration with the first seed, then with the second, ...) and go
to ``<output_dir>/<run name>``, a flat, stable name built from the grid overrides and the seed, e.g.
``model.name=resnet10t,loss.method=lsr_os,loss.alpha=0.5,loss.temperature=2.0,seed=0`` (``data.name``,
``model.name`` and ``loss.method`` first, then the other keys alphabetically; a value with characters outside
``[A-Za-z0-9._+-]`` is sanitised and the name gets a ``~<hash>`` suffix so that it stays unique). A run whose
``results.json`` exists is skipped (after checking that it was made from the same recipe), an unfinished run resumes
from its last checkpoint if it has one and restarts otherwise. Runs execute in this process, one after the other,
through :func:`lsr_hf.train.run` (what ``scripts/train.py`` runs).

:func:`write_report` reads every ``results.json`` under a folder, groups the runs that differ only in their seed and
writes ``results.md``, ``results.csv`` and PNG plots (see its docstring).
"""

from __future__ import annotations

import csv
import difflib
import gc
import hashlib
import itertools
import json
import math
import os
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lsr_hf.recipe import SECTIONS, Recipe, RecipeError, load_recipe

__all__ = [
    "ConfigResult",
    "PlannedRun",
    "RunRecord",
    "SweepError",
    "SweepSpec",
    "collect_runs",
    "expand_grids",
    "load_sweep",
    "plan_sweep",
    "run_name",
    "run_sweep",
    "select_by_validation",
    "summarize_runs",
    "write_report",
]

RESULTS_FILE = "results.json"  # written by lsr_hf.train.run
PREDICTIONS_FILE = "test_predictions.npz"  # idem: test logits and labels
SWEEP_KEYS = ("recipe", "output_dir", "seeds", "set", "grids")
RUN_OWNED_KEYS = ("training.output_dir", "training.seed")  # set per run by the sweep
NAME_FIRST_KEYS = ("data.name", "model.name", "loss.method")  # run names start with these, the rest alphabetical
MAX_NAME_LENGTH = 150
_DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+-]")

# report: the loss hyperparameters each method uses (the others are ignored by the objective)
METHOD_ORDER = ("ce", "lsr", "tfkd", "lsr_os", "lsr_os_tc", "kd")
METHOD_PARAMS: dict[str, tuple[str, ...]] = {
    "ce": (),
    "lsr": ("alpha",),
    "tfkd": ("alpha", "teacher_temperature", "multiplier"),
    "lsr_os": ("alpha", "temperature"),
    "lsr_os_tc": ("alpha", "temperature", "correct_prob"),
    "kd": ("alpha", "temperature"),
}
LOSS_PARAMS = ("alpha", "temperature", "correct_prob", "teacher_temperature", "multiplier")
PARAM_SYMBOLS = {
    "alpha": "α", "temperature": "τ", "correct_prob": "a", "teacher_temperature": "T_t", "multiplier": "mult"
}  # fmt: skip
# (results.json metric, CSV column stem, Markdown header, scale for Markdown, decimals)
METRICS = (
    ("eval_accuracy", "val_accuracy", "val acc (%)", 100.0, 2),
    ("test_accuracy", "test_accuracy", "test acc (%)", 100.0, 2),
    ("test_ece", "test_ece", "test ECE (%)", 100.0, 2),
    ("test_nll", "test_nll", "test NLL", 1.0, 4),
)
STAT_METRICS = (*(m[0] for m in METRICS), "eval_nll")  # eval_nll breaks ties in the selection
# recipe entries that differ between the runs of one configuration, or that do not change what is trained
BOOKKEEPING_KEYS = ("training.output_dir", "training.seed", "training.logging_dir", "training.run_name")
BOOKKEEPING_SECTIONS = ("hub",)
HEATMAP_METHODS = ("lsr_os", "lsr_os_tc", "kd")
RELIABILITY_BINS = 15


class SweepError(ValueError):
    """A sweep file, a sweep plan or a results folder is invalid; the message says which file and key."""


# ----------------------------------------------------------------------------------------------------------------
# the sweep file


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file. ``recipe`` is already resolved against the sweep file's folder."""

    path: str
    recipe: str
    output_dir: str
    seeds: tuple[int, ...] = (0,)
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
                    text = _yaml_text(value)
                    if text in texts:
                        raise SweepError(f"{where}: {key} lists {text} twice")
                    texts.append(text)
                checked[key] = tuple(values)
            grids.append(checked)

    return SweepSpec(
        path=shown, recipe=recipe_path, output_dir=output_dir, seeds=tuple(seeds), set=tuple(fixed), grids=tuple(grids)
    )


def _check_key(key: str, where: str) -> None:
    if not _DOTTED_KEY.fullmatch(key):
        raise SweepError(f"{where}: the key must be 'section.name', e.g. loss.alpha")
    section = key.split(".")[0]
    if section not in SECTIONS:
        hint = difflib.get_close_matches(section, SECTIONS, n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise SweepError(f"{where}: unknown section {section!r}{suggestion}; the sections are {', '.join(SECTIONS)}")
    if key in RUN_OWNED_KEYS:
        raise SweepError(
            f"{where}: {key} is set by the sweep for each run (output_dir: for the folder, seeds: for the seeds)"
        )


def _is_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _yaml_text(value: Any) -> str:
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
            identity = tuple(sorted((k, _yaml_text(v)) for k, v in config.items()))
            if identity not in seen:
                seen.add(identity)
                configs.append(config)
    return configs


def run_name(overrides: Mapping[str, Any], seed: int) -> str:
    """The folder name of one run: ``key=value`` pairs joined by commas, then ``seed=<seed>``.

    ``data.name``, ``model.name`` and ``loss.method`` come first, the other keys in alphabetical order, so the name
    does not depend on the order of the sweep file. Characters outside ``[A-Za-z0-9._+-]`` in a value become ``-``
    and then, as for names longer than ``MAX_NAME_LENGTH``, an 8-character hash of the overrides is appended.
    """
    first = [k for k in NAME_FIRST_KEYS if k in overrides]
    keys = first + sorted(k for k in overrides if k not in NAME_FIRST_KEYS)
    parts, sanitised = [], False
    for key in keys:
        text = _yaml_text(overrides[key])
        safe = _UNSAFE_NAME_CHARS.sub("-", text)
        sanitised |= safe != text
        parts.append(f"{key}={safe}")
    parts.append(f"seed={int(seed)}")
    name = ",".join(parts)
    if sanitised or len(name) > MAX_NAME_LENGTH:
        identity = json.dumps([[k, _yaml_text(overrides[k])] for k in sorted(overrides)] + [["seed", int(seed)]])
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: MAX_NAME_LENGTH - 9]}~{digest}"
    return name


# ----------------------------------------------------------------------------------------------------------------
# planning and running


@dataclass
class PlannedRun:
    """One run of a sweep: its grid overrides, seed, folder and validated recipe."""

    name: str
    overrides: dict[str, Any]
    seed: int
    output_dir: Path
    recipe: Recipe
    status: str = "new"  # "done" (results.json exists), "resume" (has a checkpoint), "restart" (folder, no results)


def plan_sweep(spec: SweepSpec, output_dir: str | os.PathLike[str] | None = None) -> list[PlannedRun]:
    """Expands the grids over the seeds, loads and checks every run's recipe and finds each run's status.

    Nothing is trained or written. Raises :class:`SweepError` listing every invalid run (identical messages
    grouped), when two different runs would share a folder, or when a finished run's ``results.json`` was made
    from a different recipe than the one planned now (a changed base recipe or ``set:``).
    """
    from lsr_hf.data import get_spec

    root = Path(output_dir if output_dir is not None else spec.output_dir)
    errors: dict[str, list[str]] = {}
    runs: list[PlannedRun] = []
    seen_recipes: set[str] = set()
    names: dict[str, str] = {}
    configs = expand_grids(spec.grids)
    for seed in spec.seeds:  # seed-major: a stopped sweep has whole seeds of the grid done, not a few configurations
        for config in configs:
            name = run_name(config, seed)
            folder = root / name
            overrides = [
                *spec.set,
                *(f"{key}={_yaml_text(value)}" for key, value in config.items()),
                f"training.seed={seed}",
                f"training.output_dir={json.dumps(str(folder))}",
            ]
            try:
                recipe = load_recipe(spec.recipe, overrides)
            except RecipeError as err:
                errors.setdefault(str(err).replace("(from --set)", "(from the sweep)"), []).append(name)
                continue
            try:  # what lsr_hf.train.run checks first, before loading data
                recipe.loss.check_num_classes(get_spec(recipe.data.name).num_classes)
            except ValueError as err:
                errors.setdefault(f"{spec.recipe}: loss.{err}", []).append(name)
                continue
            identity = _recipe_identity(recipe.to_dict(), drop=("training.output_dir",))
            if identity in seen_recipes:  # same resolved recipe as an earlier run (e.g. a grid repeating a default)
                continue
            seen_recipes.add(identity)
            if name in names and names[name] != identity:
                raise SweepError(f"{spec.path}: two different runs map to the folder {name!r}; rename a grid value")
            names[name] = identity
            runs.append(PlannedRun(name=name, overrides=dict(config), seed=seed, output_dir=folder, recipe=recipe))
    if errors:
        lines = [f"{spec.path}: {sum(map(len, errors.values()))} run(s) have an invalid recipe:"]
        for message, failed in errors.items():
            lines.append(f"  {message}  [{len(failed)} run(s), e.g. {failed[0]}]")
        raise SweepError("\n".join(lines))
    for planned in runs:
        planned.status = _status(planned)
    return runs


def _status(planned: PlannedRun) -> str:
    results_path = planned.output_dir / RESULTS_FILE
    if results_path.is_file():
        try:
            stored = json.loads(results_path.read_text(encoding="utf-8")).get("recipe")
        except (json.JSONDecodeError, AttributeError):
            return "restart"  # an unreadable results file: the run did not finish cleanly
        # the folder itself may have moved (another --output-dir): compare everything else
        was = _recipe_view(stored if isinstance(stored, dict) else {}, drop=("training.output_dir",))
        now = _recipe_view(planned.recipe.to_dict(), drop=("training.output_dir",))
        if was != now:
            changed = sorted(k for k in set(was) | set(now) if was.get(k, "<unset>") != now.get(k, "<unset>"))
            raise SweepError(
                f"{results_path} was made from a different recipe than the one planned now (differs in "
                f"{', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}: was the base recipe or set: "
                "changed?); delete that folder or use another output_dir"
            )
        return "done"
    if planned.output_dir.is_dir():
        from transformers.trainer_utils import get_last_checkpoint

        return "resume" if get_last_checkpoint(str(planned.output_dir)) is not None else "restart"
    return "new"


def run_sweep(
    spec: SweepSpec,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    callbacks: Sequence[Any] = (),
    echo: Callable[[str], None] = print,
    report: bool = True,
) -> list[PlannedRun]:
    """Runs a sweep: plans (and validates) every run, trains the unfinished ones in order, writes the report.

    Args:
        spec: from :func:`load_sweep`.
        output_dir: overrides ``spec.output_dir``.
        dry_run: only print the plan (each run's name and status); nothing is trained or written.
        callbacks: ``TrainerCallback``s passed to every run.
        echo: where progress lines go.
        report: write :func:`write_report` at the end.

    Returns the plan; the ``status`` of each run is what it was before this call ("done" ones were skipped).
    """
    root = Path(output_dir if output_dir is not None else spec.output_dir)
    runs = plan_sweep(spec, root)
    counts = {s: sum(r.status == s for r in runs) for s in ("done", "resume", "restart", "new")}
    echo(
        f"{spec.path}: {len(runs)} runs in {root} ({counts['done']} done, {counts['resume']} to resume, "
        f"{counts['restart']} to restart, {counts['new']} new)"
    )
    if dry_run:
        for k, planned in enumerate(runs, start=1):
            echo(f"[{k}/{len(runs)}] {planned.status:7s} {planned.name}")
        return runs

    from lsr_hf.train import run as train_run

    for k, planned in enumerate(runs, start=1):
        prefix = f"[{k}/{len(runs)}] {planned.name}"
        if planned.status == "done":
            echo(f"{prefix}: done, skipped")
            continue
        echo(f"{prefix}: {'resuming' if planned.status == 'resume' else 'training'}")
        try:
            results = train_run(planned.recipe, resume=planned.status == "resume", callbacks=callbacks)
        except BaseException:
            echo(f"{prefix}: failed; the finished runs are kept, run the same command again to continue")
            raise
        metrics = results["metrics"]
        echo(
            f"{prefix}: test accuracy {metrics.get('test_accuracy', float('nan')):.4f}, "
            f"val accuracy {metrics.get('eval_accuracy', float('nan')):.4f} in {results['wall_seconds']:.0f} s"
        )
        gc.collect()
    if report:
        for path in write_report(root):
            echo(f"wrote {path}")
    return runs


# ----------------------------------------------------------------------------------------------------------------
# collecting and summarising results


@dataclass
class RunRecord:
    """One finished run, as read back from its ``results.json``."""

    folder: Path
    seed: int | None
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    wall_seconds: float = float("nan")

    @property
    def method(self) -> str:
        return str(self.recipe.get("loss", {}).get("method", "?"))

    @property
    def backbone(self) -> str:
        return str(self.recipe.get("model", {}).get("name", "?"))

    @property
    def dataset(self) -> str:
        return str(self.recipe.get("data", {}).get("name", "?"))


def collect_runs(directory: str | os.PathLike[str]) -> list[RunRecord]:
    """Every ``results.json`` under ``directory`` (recursively, in path order) as a :class:`RunRecord`."""
    records = []
    for path in sorted(Path(directory).rglob(RESULTS_FILE)):
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SweepError(f"{path}: not valid JSON ({err}); delete it to re-run that run") from err
        if not isinstance(results, dict) or not isinstance(results.get("recipe"), dict):
            raise SweepError(f"{path}: not a results.json written by lsr_hf.train.run (no 'recipe' mapping)")
        records.append(
            RunRecord(
                folder=path.parent,
                seed=results.get("seed"),
                recipe=results["recipe"],
                metrics=dict(results.get("metrics") or {}),
                wall_seconds=float(results.get("wall_seconds", float("nan"))),
            )
        )
    return records


@dataclass
class ConfigResult:
    """The runs of one configuration (recipes equal up to the seed and the output folder) and their statistics."""

    dataset: str
    backbone: str
    method: str
    params: dict[str, Any]  # what tells this configuration apart: the method's loss parameters + varying keys
    runs: list[RunRecord]
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)  # results.json metric -> (mean, std)
    selected: bool = False
    n_settings: int = 1  # configurations of this method × backbone (× dataset)

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def setting(self) -> str:
        """The parameters in words, e.g. ``α=0.5, τ=4, a=0.2`` ('—' for none)."""
        if not self.params:
            return "—"
        return ", ".join(f"{PARAM_SYMBOLS.get(k.removeprefix('loss.'), k)}={_short(v)}" for k, v in self.params.items())

    def mean(self, metric: str) -> float:
        return self.stats.get(metric, (float("nan"), float("nan")))[0]


def summarize_runs(records: Sequence[RunRecord]) -> list[ConfigResult]:
    """Groups runs that differ only in their seed (and folder) and computes the mean and the sample standard
    deviation (ddof = 1; NaN for a single run) of each metric over the group; marks the configuration that
    :func:`select_by_validation` chooses for each method × backbone × dataset.

    Sorted by dataset, backbone, method (``METHOD_ORDER``), then parameters.
    """
    groups: dict[str, list[RunRecord]] = {}
    flat: dict[str, dict[str, Any]] = {}
    for record in records:
        view = _recipe_view(record.recipe, drop=BOOKKEEPING_KEYS, drop_sections=BOOKKEEPING_SECTIONS)
        identity = json.dumps(view, sort_keys=True)
        groups.setdefault(identity, []).append(record)
        flat.setdefault(identity, view)
    # non-loss keys that differ between configurations (e.g. a swept number of epochs) are part of the setting
    all_keys = sorted(set().union(*flat.values())) if flat else []
    varying = [
        key
        for key in all_keys
        if not key.startswith("loss.")
        and key not in ("model.name", "data.name")
        and len({json.dumps(f.get(key, "<unset>"), sort_keys=True) for f in flat.values()}) > 1
    ]
    configs = []
    for identity, runs in groups.items():
        first = runs[0]
        loss = first.recipe.get("loss", {})
        method = first.method
        params = {f"loss.{p}": loss.get(p) for p in METHOD_PARAMS.get(method, LOSS_PARAMS)}
        params.update({key: flat[identity].get(key) for key in varying})
        stats = {}
        for metric in STAT_METRICS:
            values = [float(r.metrics[metric]) for r in runs if _is_number(r.metrics.get(metric))]
            mean = statistics.fmean(values) if values else float("nan")
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            stats[metric] = (mean, std)
        runs_sorted = sorted(runs, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.folder)))
        configs.append(
            ConfigResult(
                dataset=first.dataset, backbone=first.backbone, method=method, params=params, runs=runs_sorted,
                stats=stats,
            )
        )
    configs.sort(key=_config_order)
    for chosen, candidates in select_by_validation(configs).values():
        chosen.selected = True
        for config in candidates:
            config.n_settings = len(candidates)
    return configs


def select_by_validation(
    configs: Iterable[ConfigResult],
) -> dict[tuple[str, str, str], tuple[ConfigResult, list[ConfigResult]]]:
    """For each (dataset, backbone, method): the configuration with the highest mean validation accuracy
    (``eval_accuracy``; ties → lower mean validation NLL, then the first in order), and all its candidates.
    Test metrics play no part in the choice."""
    by_key: dict[tuple[str, str, str], list[ConfigResult]] = {}
    for config in configs:
        by_key.setdefault((config.dataset, config.backbone, config.method), []).append(config)

    def score(config: ConfigResult) -> tuple[float, float]:
        accuracy, nll = config.mean("eval_accuracy"), config.mean("eval_nll")
        return (-accuracy if math.isfinite(accuracy) else math.inf, nll if math.isfinite(nll) else math.inf)

    out = {}
    for key, candidates in by_key.items():
        best = min(range(len(candidates)), key=lambda i: (score(candidates[i]), i))
        out[key] = (candidates[best], candidates)
    return out


def _config_order(config: ConfigResult) -> tuple[Any, ...]:
    method_rank = METHOD_ORDER.index(config.method) if config.method in METHOD_ORDER else len(METHOD_ORDER)
    params = tuple((k, _sortable(v)) for k, v in config.params.items())
    return (config.dataset, config.backbone, method_rank, config.method, params)


def _sortable(value: Any) -> tuple[int, Any]:
    if _is_number(value):
        return (0, float(value))
    return (1, json.dumps(value, sort_keys=True))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def _flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _recipe_view(recipe: Mapping[str, Any], drop: Sequence[str], drop_sections: Sequence[str] = ()) -> dict[str, Any]:
    """What a recipe dict trains, flattened to dotted keys: without the ``drop`` keys, the ``drop_sections`` and
    the loss parameters its method does not use (``METHOD_PARAMS``: ce's alpha, lsr's temperature, ...)."""
    flat = _flatten(json.loads(json.dumps(recipe)))
    kept = {k: v for k, v in flat.items() if k not in drop and k.split(".")[0] not in drop_sections}
    used = METHOD_PARAMS.get(str(flat.get("loss.method")))
    if used is not None:
        for unused in set(LOSS_PARAMS) - set(used):
            kept.pop(f"loss.{unused}", None)
    return kept


def _recipe_identity(recipe: Mapping[str, Any], drop: Sequence[str], drop_sections: Sequence[str] = ()) -> str:
    """A canonical text of :func:`_recipe_view`: equal for recipes that train the same thing."""
    return json.dumps(_recipe_view(recipe, drop, drop_sections), sort_keys=True)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ----------------------------------------------------------------------------------------------------------------
# the report: results.md, results.csv, plots


def write_report(directory: str | os.PathLike[str]) -> list[Path]:
    """Regenerates the report of every finished run under ``directory`` (from ``results.json`` and
    ``test_predictions.npz`` alone) and returns the paths written:

    * ``results.csv``: one row per configuration (runs equal up to seed): dataset, backbone, method, setting, the
      loss parameters the method uses, any other recipe keys that differ between configurations, n, seeds, mean and
      sample std (ddof = 1) of validation accuracy, test accuracy, test ECE and test NLL (fractions, nats),
      ``selected`` (the setting chosen for its method × backbone by mean validation accuracy), ``n_settings`` and the
      run folders.
    * ``results.md``: the summary (one row per method × backbone: the validation-selected setting and its test
      numbers), then every configuration, as mean ± std over seeds, accuracies and ECE in %.
    * ``heatmap_<method>_<backbone>.png`` for lsr_os, lsr_os_tc and kd when their (α, τ) grid has at least two
      points: mean test accuracy over α (rows) × τ (columns), one panel per value of the other parameters (lsr_os_tc:
      one panel per correct_prob a), the validation-selected setting outlined; skipped without (α, τ) variation.
    * ``reliability_<backbone>.png``: a reliability diagram (15 equal-width confidence bins), one curve per method
      at its selected setting with the test predictions of all its seeds pooled, and the ECE of the pooled
      predictions in the legend; methods without saved predictions are left out.

    With several datasets under ``directory`` the plot names get a ``<dataset>_`` prefix after the plot kind.
    Plots left by an earlier report (``heatmap_*.png``, ``reliability_*.png`` in ``directory``) are replaced.
    Plots need matplotlib (the ``plots`` extra); without it the tables are still written.
    """
    root = Path(directory)
    records = collect_runs(root)
    if not records:
        raise SweepError(f"{root}: no {RESULTS_FILE} found under this folder (no finished runs)")
    configs = summarize_runs(records)
    written = [_write_csv(root / "results.csv", root, configs)]
    for stale in [*root.glob("heatmap_*.png"), *root.glob("reliability_*.png")]:  # from an earlier report
        stale.unlink()
    plots: list[Path] = []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plots_note = "matplotlib is not installed (pip install 'lsr-hf[plots]'): no plots"
    else:
        plots_note = ""
        several = len({c.dataset for c in configs}) > 1
        plots += _write_heatmaps(root, configs, several)
        plots += _write_reliability(root, configs, several)
    written.append(_write_markdown(root / "results.md", root, records, configs, plots, plots_note))
    return written + plots


def _format_stat(mean: float, std: float, scale: float, decimals: int) -> str:
    if not math.isfinite(mean):
        return "–"
    text = f"{mean * scale:.{decimals}f}"
    return text + (f" ± {std * scale:.{decimals}f}" if math.isfinite(std) else "")


def _other_keys(configs: Sequence[ConfigResult]) -> list[str]:
    keys: list[str] = []
    for config in configs:
        keys += [k for k in config.params if not k.startswith("loss.") and k not in keys]
    return keys


def _write_csv(path: Path, root: Path, configs: Sequence[ConfigResult]) -> Path:
    others = _other_keys(configs)
    header = ["dataset", "backbone", "method", "setting", *LOSS_PARAMS, *others, "n", "seeds"]
    for _, column, *_ in METRICS:
        header += [f"{column}_mean", f"{column}_std"]
    header += ["selected", "n_settings", "runs"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for config in configs:
            row: list[Any] = [config.dataset, config.backbone, config.method, config.setting]
            row += [_csv_value(config.params.get(f"loss.{p}", "")) for p in LOSS_PARAMS]
            row += [_csv_value(config.params.get(k, "")) for k in others]
            row += [config.n, " ".join(str(r.seed) for r in config.runs)]
            for metric, *_ in METRICS:
                row += [_csv_value(v) for v in config.stats[metric]]
            row += [config.selected, config.n_settings, ";".join(str(r.folder.relative_to(root)) for r in config.runs)]
            writer.writerow(row)
    return path


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _write_markdown(
    path: Path,
    root: Path,
    records: Sequence[RunRecord],
    configs: Sequence[ConfigResult],
    plots: Sequence[Path],
    plots_note: str,
) -> Path:
    several = len({c.dataset for c in configs}) > 1
    lead = ["dataset"] if several else []
    metric_headers = [header for _, _, header, *_ in METRICS]
    minutes = sum(r.wall_seconds for r in records if math.isfinite(r.wall_seconds)) / 60.0
    datasets = ", ".join(sorted({c.dataset for c in configs}))
    lines = [
        f"# Sweep results: {root}",
        "",
        f"{len(records)} finished runs in {len(configs)} configurations on {datasets} "
        f"({minutes:.0f} min of run time in all). Each cell is the mean ± sample standard deviation over the n runs "
        "(seeds) of a configuration; accuracies and ECE (15 equal-width bins) in %, NLL in nats. "
        "Regenerate with `python scripts/sweep.py report " + str(root) + "`.",
        "",
        "## Summary",
        "",
        "One row per method and backbone. Where a method was run with several settings, the setting is **chosen by "
        "mean validation accuracy** (ties: lower validation NLL) and its test numbers are reported; the test split "
        "plays no part in the choice.",
        "",
        _md_row([*lead, "backbone", "method", "chosen setting", "of", "n", *metric_headers]),
        _md_row(["---"] * (len(lead) + 5 + len(METRICS))),
    ]
    for config in configs:
        if config.selected:
            lines.append(
                _md_row(
                    [*([config.dataset] if several else []), config.backbone, config.method, config.setting,
                     str(config.n_settings), str(config.n), *_md_stats(config)]
                )
            )  # fmt: skip
    lines += [
        "",
        "## All configurations",
        "",
        "✓ marks the setting chosen for its method and backbone.",
        "",
        _md_row([*lead, "backbone", "method", "setting", "chosen", "n", *metric_headers]),
        _md_row(["---"] * (len(lead) + 5 + len(METRICS))),
    ]
    for config in configs:
        lines.append(
            _md_row(
                [*([config.dataset] if several else []), config.backbone, config.method, config.setting,
                 "✓" if config.selected else "", str(config.n), *_md_stats(config)]
            )
        )  # fmt: skip
    lines += ["", "## Plots", ""]
    if plots_note:
        lines.append(plots_note)
    elif not plots:
        lines.append("No plots: no (α, τ) grid and no saved test predictions.")
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def _md_stats(config: ConfigResult) -> list[str]:
    return [_format_stat(*config.stats[metric], scale, decimals) for metric, _, _, scale, decimals in METRICS]


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _plot_name(kind: str, dataset: str, parts: Sequence[str], several_datasets: bool) -> str:
    pieces = [kind, *([dataset] if several_datasets else []), *parts]
    return "_".join(_UNSAFE_NAME_CHARS.sub("-", p) for p in pieces) + ".png"


def _new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _write_heatmaps(root: Path, configs: Sequence[ConfigResult], several_datasets: bool) -> list[Path]:
    groups: dict[tuple[str, str, str], list[ConfigResult]] = {}
    for config in configs:
        if config.method in HEATMAP_METHODS:
            groups.setdefault((config.dataset, config.backbone, config.method), []).append(config)
    written = []
    for (dataset, backbone, method), group in groups.items():
        points = {(c.params.get("loss.alpha"), c.params.get("loss.temperature")) for c in group}
        if len(points) < 2:
            continue  # no (α, τ) variation: nothing to map
        alphas = sorted({p[0] for p in points}, key=_sortable)
        taus = sorted({p[1] for p in points}, key=_sortable)
        panel_of = {
            id(c): tuple((k, v) for k, v in c.params.items() if k not in ("loss.alpha", "loss.temperature"))
            for c in group
        }
        panels = sorted(set(panel_of.values()), key=lambda panel: tuple(_sortable(v) for _, v in panel))
        grids = {panel: np.full((len(alphas), len(taus)), np.nan) for panel in panels}
        chosen: tuple[Any, int, int] | None = None
        for c in group:
            i, j = alphas.index(c.params.get("loss.alpha")), taus.index(c.params.get("loss.temperature"))
            grids[panel_of[id(c)]][i, j] = c.mean("test_accuracy") * 100.0
            if c.selected:
                chosen = (panel_of[id(c)], i, j)
        values = np.concatenate([g.ravel() for g in grids.values()])
        if not np.isfinite(values).any():
            continue
        vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
        if vmin == vmax:
            vmin, vmax = vmin - 0.5, vmax + 0.5
        width = max(4.5, 1.3 + (0.9 * len(taus) + 0.9) * len(panels) + 1.0)
        figure = _new_figure(width, 1.6 + 0.55 * len(alphas) + 0.8)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        image = None
        for ax, panel in zip(axes, panels):
            grid = grids[panel]
            image = ax.imshow(grid, cmap="viridis", vmin=vmin, vmax=vmax, origin="lower", aspect="auto")
            ax.set_xticks(range(len(taus)), [_short(t) for t in taus])
            ax.set_yticks(range(len(alphas)), [_short(a) for a in alphas])
            ax.set_xlabel("τ (temperature)")
            ax.set_ylabel("α")
            label = ", ".join(f"{PARAM_SYMBOLS.get(k.removeprefix('loss.'), k)}={_short(v)}" for k, v in panel)
            if label:
                ax.set_title(label, fontsize=9)
            for i in range(len(alphas)):
                for j in range(len(taus)):
                    if np.isfinite(grid[i, j]):
                        dark = (grid[i, j] - vmin) / (vmax - vmin) < 0.5
                        ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=8,
                                color="white" if dark else "black")  # fmt: skip
            if chosen is not None and chosen[0] == panel:
                from matplotlib.patches import Rectangle

                ax.add_patch(Rectangle((chosen[2] - 0.5, chosen[1] - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
        figure.suptitle(
            f"{method} on {backbone} ({dataset}): mean test accuracy (%) over seeds\n"
            "red box: the setting chosen by validation accuracy",
            fontsize=9,
        )
        if image is not None:
            figure.colorbar(image, ax=list(axes), shrink=0.9, label="test accuracy (%)")
        path = root / _plot_name("heatmap", dataset, [method, backbone], several_datasets)
        figure.savefig(path, dpi=110)
        written.append(path)
    return written


def _pooled_predictions(config: ConfigResult) -> tuple[np.ndarray, np.ndarray] | None:
    logits, labels = [], []
    for record in config.runs:
        path = record.folder / PREDICTIONS_FILE
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as saved:
            logits.append(np.asarray(saved["logits"]))
            labels.append(np.asarray(saved["labels"]))
    if not logits:
        return None
    return np.concatenate(logits), np.concatenate(labels)


def _write_reliability(root: Path, configs: Sequence[ConfigResult], several_datasets: bool) -> list[Path]:
    from lsr_hf.metrics.functional import expected_calibration_error, reliability_bins

    by_backbone: dict[tuple[str, str], list[ConfigResult]] = {}
    for config in configs:
        if config.selected:
            by_backbone.setdefault((config.dataset, config.backbone), []).append(config)
    written = []
    for (dataset, backbone), selected in by_backbone.items():
        curves = []
        for config in selected:  # already in METHOD_ORDER
            pooled = _pooled_predictions(config)
            if pooled is None:
                continue
            confidence, accuracy, count = reliability_bins(*pooled, n_bins=RELIABILITY_BINS)
            ece = expected_calibration_error(*pooled, n_bins=RELIABILITY_BINS)
            full = count > 0
            curves.append((config, confidence[full], accuracy[full], count[full] / count.sum(), ece))
        if not curves:
            continue
        figure = _new_figure(5.2, 4.6)
        ax = figure.subplots()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
        for config, confidence, accuracy, share, ece in curves:
            setting = f" ({config.setting})" if config.params else ""
            label = f"{config.method}{setting}, ECE {ece * 100:.2f}%"
            (line,) = ax.plot(confidence, accuracy, linewidth=1.2, label=label)
            ax.scatter(confidence, accuracy, s=8 + 300 * share, color=line.get_color(), alpha=0.7, zorder=3)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("confidence (mean max probability in the bin)")
        ax.set_ylabel("accuracy in the bin")
        ax.set_title(
            f"{backbone} ({dataset}): test reliability, seeds pooled\n"
            f"{RELIABILITY_BINS} equal-width bins, marker area ∝ share of predictions in the bin",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="lower right")
        path = root / _plot_name("reliability", dataset, [backbone], several_datasets)
        figure.savefig(path, dpi=110)
        written.append(path)
    return written
