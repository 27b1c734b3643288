"""Collecting finished runs, summarising them over seeds, and choosing settings by validation accuracy."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from lsr_hf.sweep.common import (
    BOOKKEEPING_KEYS,
    DEFAULT_SELECTION,
    BOOKKEEPING_SECTIONS,
    LOSS_PARAMS,
    METHOD_ORDER,
    METHOD_PARAMS,
    PARAM_SYMBOLS,
    STAT_METRICS,
    SelectionCriterion,
    SweepError,
    compact_value,
    is_number,
    recipe_view,
    sort_key,
    selection_criterion,
)
from lsr_hf.job.outputs import RESULTS_FILE


class Replicate(NamedTuple):
    """One repetition of a configuration in a k-fold sweep: its seed and the fold that was its test split."""

    seed: int | None
    fold: int

    def __str__(self) -> str:
        return f"{self.seed}/{self.fold}"


@dataclass
class RunRecord:
    """One finished run, as read back from its ``results.json``."""

    folder: Path
    seed: int | None
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    wall_seconds: float = float("nan")

    @property
    def fold(self) -> int | None:
        """The fold that was the test split (``data.fold`` of a run with ``data.num_folds``), else None."""
        data = self.recipe.get("data", {})
        return int(data.get("fold", 0)) if data.get("num_folds") is not None else None

    @property
    def replicate(self) -> int | None | Replicate:
        """What tells this run apart from the other runs of its configuration: the seed, or (seed, fold) for a run
        of a k-fold sweep. Runs of two configurations with the same replicate share seed and data split (pairing)."""
        return self.seed if self.fold is None else Replicate(self.seed, self.fold)

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
            raise SweepError(f"{path}: not a results.json written by lsr_hf.job.train.run (no 'recipe' mapping)")
        metrics = dict(results.get("metrics") or {})
        if "train_seconds_per_epoch" not in metrics and results.get("resumed_from") is None:
            metrics["train_seconds_per_epoch"] = _seconds_per_epoch(metrics)
        records.append(
            RunRecord(
                folder=path.parent,
                seed=results.get("seed"),
                recipe=results["recipe"],
                metrics=metrics,
                wall_seconds=float(results.get("wall_seconds", float("nan"))),
            )
        )
    return records


def _seconds_per_epoch(metrics: dict[str, Any]) -> float:
    """``train_runtime / epoch`` for results written before runs timed their epochs (``lsr_hf.job.timing``): right
    for a run that was not resumed and evaluated nothing during training; NaN when either number is missing."""
    runtime, epochs = metrics.get("train_runtime"), metrics.get("epoch")
    try:
        runtime, epochs = float(runtime), float(epochs)
    except (TypeError, ValueError):
        return float("nan")
    return runtime / epochs if epochs > 0 and math.isfinite(runtime) else float("nan")


@dataclass
class ConfigResult:
    """The runs of one configuration (recipes equal up to the seed and the output folder) and their statistics."""

    dataset: str
    backbone: str
    method: str
    params: dict[str, Any]  # what tells this configuration apart: the method's loss parameters + varying keys
    runs: list[RunRecord]
    backbone_recipe: dict[str, Any] = field(default_factory=dict)  # keys set per backbone, not part of the setting
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
        symbol = lambda key: PARAM_SYMBOLS.get(key.removeprefix("loss."), key)  # noqa: E731
        return ", ".join(f"{symbol(k)}={compact_value(v)}" for k, v in self.params.items())

    def mean(self, metric: str) -> float:
        return self.stats.get(metric, (float("nan"), float("nan")))[0]


def summarize_runs(records: Sequence[RunRecord], select_by: str = DEFAULT_SELECTION) -> list[ConfigResult]:
    """Groups runs that differ only in their seed (and folder) and computes the mean and the sample standard
    deviation (ddof = 1; NaN for a single run) of each metric over the group; marks the configuration that
    :func:`select_by_validation` chooses for each method × backbone × dataset (by ``select_by``).

    A recipe key outside ``loss`` whose value differs between configurations is either part of the compared
    setting (``params``; it varies among the configurations of some backbone, e.g. a swept number of epochs) or
    part of a backbone's own training recipe (``backbone_recipe``; one value on each backbone but not the same on
    all, e.g. AdamW for ConvNeXt and SGD for ResNets). The latter does not tell settings apart, so a setting chosen
    on one backbone is found on another (:mod:`lsr_hf.sweep.transfer`).

    Sorted by dataset, backbone, method (``METHOD_ORDER``), then parameters.
    """
    groups: dict[str, list[RunRecord]] = {}
    flat: dict[str, dict[str, Any]] = {}
    views = [recipe_view(r.recipe, drop=BOOKKEEPING_KEYS, drop_sections=BOOKKEEPING_SECTIONS) for r in records]
    version_keys = _version_keys(views)
    for record, view in zip(records, views):
        view = {k: v for k, v in view.items() if k not in version_keys}
        identity = json.dumps(view, sort_keys=True)
        groups.setdefault(identity, []).append(record)
        flat.setdefault(identity, view)
    all_keys = sorted(set().union(*flat.values())) if flat else []
    text = lambda view, key: json.dumps(view.get(key, "<unset>"), sort_keys=True)  # noqa: E731
    varying = [
        key
        for key in all_keys
        if not key.startswith("loss.")
        and key not in ("model.name", "data.name")
        and len({text(f, key) for f in flat.values()}) > 1
    ]
    by_backbone: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for view in flat.values():
        by_backbone.setdefault((view.get("data.name"), view.get("model.name")), []).append(view)
    per_backbone = [
        key for key in varying if all(len({text(v, key) for v in views}) == 1 for views in by_backbone.values())
    ]
    setting_keys = [key for key in varying if key not in per_backbone]
    configs = []
    for identity, runs in groups.items():
        first = runs[0]
        loss = first.recipe.get("loss", {})
        method = first.method
        params = {f"loss.{p}": loss.get(p) for p in METHOD_PARAMS.get(method, LOSS_PARAMS)}
        params.update({key: flat[identity].get(key) for key in setting_keys})
        stats = {}
        for metric in STAT_METRICS:
            values = [float(r.metrics[metric]) for r in runs if is_number(r.metrics.get(metric))]
            mean = statistics.fmean(values) if values else float("nan")
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            stats[metric] = (mean, std)
        runs_sorted = sorted(
            runs, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, r.fold or 0, str(r.folder))
        )
        configs.append(
            ConfigResult(
                dataset=first.dataset, backbone=first.backbone, method=method, params=params, runs=runs_sorted,
                backbone_recipe={key: flat[identity].get(key) for key in per_backbone}, stats=stats,
            )
        )
    configs.sort(key=_config_order)
    for chosen, candidates in select_by_validation(configs, select_by).values():
        chosen.selected = True
        for config in candidates:
            config.n_settings = len(candidates)
    return configs


def _version_keys(views: Sequence[dict[str, Any]]) -> set[str]:
    """Recipe keys that some runs lack only because they were made by an lsr-hf version without that field: not
    loss parameters (which a method may simply not use), missing from some runs, one value wherever present."""
    union = set().union(*views) if views else set()
    out = set()
    for key in union:
        if key.startswith("loss.") or all(key in v for v in views):
            continue
        if len({json.dumps(v[key], sort_keys=True) for v in views if key in v}) == 1:
            out.add(key)
    return out


def select_by_validation(
    configs: Iterable[ConfigResult], select_by: str = DEFAULT_SELECTION
) -> dict[tuple[str, str, str], tuple[ConfigResult, list[ConfigResult]]]:
    """For each (dataset, backbone, method): the configuration with the best mean validation score, and all its
    candidates. ``select_by="accuracy"`` (the default): highest mean ``eval_accuracy``, ties → lower mean
    ``eval_nll``; ``"nll"``: lowest mean ``eval_nll``, ties → higher accuracy; then the first in order.
    Test metrics play no part in the choice.

    The means are taken over the seeds that every candidate was run with (all seeds where they share none), so a
    setting repeated with more seeds after it was chosen (a grid at one seed, then the chosen settings at more)
    competes on the same footing as before and the choice does not move.
    """
    criterion = selection_criterion(select_by)
    by_key: dict[tuple[str, str, str], list[ConfigResult]] = {}
    for config in configs:
        by_key.setdefault((config.dataset, config.backbone, config.method), []).append(config)

    out = {}
    for key, candidates in by_key.items():
        seeds = shared_seeds(candidates)
        best = min(range(len(candidates)), key=lambda i: (validation_score(candidates[i], seeds, criterion), i))
        out[key] = (candidates[best], candidates)
    return out


def shared_seeds(configs: Sequence[ConfigResult]) -> set[Any] | None:
    """The seeds (``RunRecord.replicate``: (seed, fold) pairs in a k-fold sweep) every configuration has a run for;
    None (meaning: all runs) when they share none."""
    seeds = set.intersection(*({r.replicate for r in c.runs} for c in configs)) if configs else set()
    return seeds or None


def seed_mean(config: ConfigResult, metric: str, seeds: set[Any] | None = None) -> float:
    """Mean of ``metric`` over the runs of ``config`` whose replicate (seed, or (seed, fold)) is in ``seeds`` (all
    runs when None); NaN if none."""
    values = [
        float(r.metrics[metric])
        for r in config.runs
        if (seeds is None or r.replicate in seeds) and is_number(r.metrics.get(metric))
    ]
    return statistics.fmean(values) if values else float("nan")


def validation_score(
    config: ConfigResult, seeds: set[Any] | None = None, criterion: SelectionCriterion | None = None
) -> tuple[float, float]:
    """Sort key of the selection (lower is better): the criterion's metric, then its tie-break metric, each negated
    where higher is better; missing values last. Default criterion: validation accuracy, then validation NLL."""
    criterion = criterion or selection_criterion(DEFAULT_SELECTION)
    primary, tie = seed_mean(config, criterion.metric, seeds), seed_mean(config, criterion.tie_break, seeds)
    sign = -1.0 if criterion.higher_is_better else 1.0
    return (sign * primary if math.isfinite(primary) else math.inf, -sign * tie if math.isfinite(tie) else math.inf)


def _config_order(config: ConfigResult) -> tuple[Any, ...]:
    method_rank = METHOD_ORDER.index(config.method) if config.method in METHOD_ORDER else len(METHOD_ORDER)
    params = tuple((k, sort_key(v)) for k, v in config.params.items())
    return (config.dataset, config.backbone, method_rank, config.method, params)
