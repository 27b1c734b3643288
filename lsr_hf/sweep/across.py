"""One setting for every backbone: each setting's validation numbers across backbones, for choosing a default.

A library default is one (α, τ[, a]) for models it has never seen, so it is chosen by how a setting does on all
the backbones of a sweep, not on one. Backbones differ in accuracy level (by tens of points on CIFAR-10), so a setting is
scored on each backbone b by its gain over the reference method (ce) on that backbone, on validation data::

    gain_b = val_acc(setting, b) − val_acc(ce, b)        (means over S_b, the seeds that every setting of the
                                                          method on b and ce on b were run with)
    mean gain = Σ_b gain_b / |B|,   worst gain = min_b gain_b

over the backbones B that have ce and this setting. Only settings run on every backbone with ce are listed. Per
method the setting with the highest mean gain (ties: lower mean validation NLL) is marked: the setting one would
ship as the method's default. Mean validation ECE and NLL go beside it, since a default may favour calibration;
the mean test gain is shown for reference only and plays no part in the choice.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from lsr_hf.sweep.results import ConfigResult, seed_mean, shared_seeds


@dataclass(frozen=True)
class AcrossRow:
    """One setting of one method over the backbones of a dataset; gains are fractions (accuracy − ce's)."""

    dataset: str
    method: str
    setting: str
    backbones: tuple[str, ...]
    mean_gain: float
    worst_gain: float
    mean_ece: float
    mean_nll: float
    mean_test_gain: float
    chosen: bool = False


def across_backbones(configs: Sequence[ConfigResult], reference: str = "ce") -> list[AcrossRow]:
    """An :class:`AcrossRow` for every (dataset, method, setting) run on every backbone of the dataset that has a
    ``reference`` configuration, the reference itself included (gain 0), when the dataset has ≥ 2 such backbones;
    in the order of ``configs``' first backbone."""
    by_dataset: dict[str, list[ConfigResult]] = {}
    for config in configs:
        by_dataset.setdefault(config.dataset, []).append(config)
    rows: list[AcrossRow] = []
    for dataset, group in by_dataset.items():
        references = {c.backbone: c for c in group if c.method == reference}
        if len(references) < 2:
            continue
        candidates: dict[tuple[str, str], list[ConfigResult]] = {}
        for config in group:
            candidates.setdefault((config.backbone, config.method), []).append(config)
        settings: dict[tuple[str, str], dict[str, ConfigResult]] = {}
        for config in group:
            if config.backbone in references:
                settings.setdefault((config.method, _params_text(config)), {})[config.backbone] = config
        method_rows: dict[str, list[AcrossRow]] = {}
        for (method, _), per_backbone in settings.items():
            if set(per_backbone) != set(references):
                continue
            gains, test_gains, eces, nlls = [], [], [], []
            for backbone, config in per_backbone.items():
                base = references[backbone]
                seeds = shared_seeds([*candidates[(backbone, method)], base])
                gains.append(seed_mean(config, "eval_accuracy", seeds) - seed_mean(base, "eval_accuracy", seeds))
                test_gains.append(seed_mean(config, "test_accuracy", seeds) - seed_mean(base, "test_accuracy", seeds))
                eces.append(seed_mean(config, "eval_ece", seeds))
                nlls.append(seed_mean(config, "eval_nll", seeds))
            first = next(iter(per_backbone.values()))
            method_rows.setdefault(method, []).append(
                AcrossRow(
                    dataset=dataset, method=method, setting=first.setting, backbones=tuple(per_backbone),
                    mean_gain=_mean(gains), worst_gain=min(gains) if all(map(math.isfinite, gains)) else math.nan,
                    mean_ece=_mean(eces), mean_nll=_mean(nlls), mean_test_gain=_mean(test_gains),
                )
            )  # fmt: skip
        for method, found in method_rows.items():
            best = min(
                range(len(found)),
                key=lambda i: (_missing_last(-found[i].mean_gain), _missing_last(found[i].mean_nll), i),
            )
            rows += [replace(row, chosen=True) if i == best else row for i, row in enumerate(found)]
    return rows


def _params_text(config: ConfigResult) -> str:
    return repr(sorted(config.params.items()))


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values and all(map(math.isfinite, values)) else math.nan


def _missing_last(value: float) -> float:
    return value if math.isfinite(value) else math.inf

