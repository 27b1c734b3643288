"""Each method against cross-entropy on the same backbone, paired by seed.

Two runs of one backbone with the same seed start from the same weights and see the same batches (the seed is set
before the data and the model are made, and the Trainer's sampler uses it), so the per-seed difference
``method − ce`` cancels much of what the seed does to both. For every method's validation-chosen configuration
(:func:`lsr_hf.sweep.results.select_by_validation`) and the reference method's on the same backbone, over the seeds
both were run with::

    d_s = metric(method, seed s) − metric(reference, seed s)
    mean = Σ_s d_s / n,   std = sqrt(Σ_s (d_s − mean)² / (n − 1))   (NaN for n = 1)

A gap whose mean is several of its std away from 0 is larger than the seed's effect; one within a std is not.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lsr_hf.sweep.common import is_number, sort_key
from lsr_hf.sweep.results import ConfigResult, shared_seeds

PAIRED_METRICS = ("test_accuracy", "test_ece", "test_nll")


@dataclass(frozen=True)
class PairedRow:
    """One method against the reference on one backbone: metric -> (mean, std) of the per-seed differences."""

    dataset: str
    backbone: str
    method: str
    setting: str
    seeds: tuple[Any, ...]
    differences: dict[str, tuple[float, float]] = field(default_factory=dict)


def paired_differences(
    configs: Sequence[ConfigResult], reference: str = "ce", metrics: Sequence[str] = PAIRED_METRICS
) -> list[PairedRow]:
    """A :class:`PairedRow` for every selected configuration of a method other than ``reference`` whose backbone
    (and dataset) has a selected ``reference`` configuration and at least one seed in common with it; in the order
    of ``configs``."""
    chosen = {(c.dataset, c.backbone, c.method): c for c in configs if c.selected}
    rows = []
    for (dataset, backbone, method), config in chosen.items():
        base = chosen.get((dataset, backbone, reference))
        if method == reference or base is None:
            continue
        shared = shared_seeds([config, base])
        if shared is None:
            continue
        seeds = tuple(sorted(shared, key=sort_key))
        mine, theirs = _by_seed(config), _by_seed(base)
        differences = {}
        for metric in metrics:
            values = [
                float(mine[s][metric]) - float(theirs[s][metric])
                for s in seeds
                if is_number(mine[s].get(metric)) and is_number(theirs[s].get(metric))
            ]
            mean = statistics.fmean(values) if values else math.nan
            std = statistics.stdev(values) if len(values) > 1 else math.nan
            differences[metric] = (mean, std)
        rows.append(PairedRow(dataset, backbone, method, config.setting, seeds, differences))
    return rows


def _by_seed(config: ConfigResult) -> dict[Any, dict]:
    """The metrics of each seed's run (``RunRecord.replicate``: each (seed, fold) in a k-fold sweep; the first run,
    in the configuration's order, when a seed has several)."""
    out: dict[Any, dict] = {}
    for run in config.runs:
        out.setdefault(run.replicate, run.metrics)
    return out
