"""The transfer table: does a setting chosen on one backbone carry over to the others?

For each method swept over several settings, each backbone in turn is the *source*: its setting chosen on its own
validation split (:func:`select_by_validation`) is applied unchanged to every other backbone (the *target*) and
compared with the target's own validation-chosen setting. ``loss = own − transferred`` test accuracy, both taken
over the seeds the two configurations share, so a setting run with more seeds does not weigh differently.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from lsr_hf.sweep.common import DEFAULT_SELECTION
from lsr_hf.sweep.results import ConfigResult, seed_mean, select_by_validation, shared_seeds


@dataclass(frozen=True)
class TransferRow:
    """One (method, source → target) pair; accuracies are fractions."""

    dataset: str
    method: str
    source: str
    target: str
    setting: str  # chosen on the source
    own_setting: str  # chosen on the target
    seeds: tuple[int | None, ...]
    transferred_accuracy: float
    own_accuracy: float

    @property
    def loss(self) -> float:
        """Test accuracy the transferred setting gives up against the target's own choice (≥ 0 unless validation
        and test disagree)."""
        return self.own_accuracy - self.transferred_accuracy


def transfer_rows(configs: Sequence[ConfigResult], select_by: str = DEFAULT_SELECTION) -> list[TransferRow]:
    """Every (method, source, target) pair of one dataset where the method has ≥ 2 settings on the source and the
    source's chosen setting was also run on the target; ordered as ``configs`` (method, then backbone)."""
    selections = select_by_validation(configs, select_by)
    rows = []
    for (dataset, source, method), (chosen, candidates) in selections.items():
        if len(candidates) < 2:
            continue  # nothing was chosen: no grid on the source
        for (other_dataset, target, other_method), (own, target_candidates) in selections.items():
            if (other_dataset, other_method) != (dataset, method) or target == source:
                continue
            match = next((c for c in target_candidates if c.params == chosen.params), None)
            if match is None:
                continue
            seeds = shared_seeds([match, own])
            rows.append(
                TransferRow(
                    dataset=dataset, method=method, source=source, target=target, setting=chosen.setting,
                    own_setting=own.setting, seeds=tuple(sorted(seeds, key=str)) if seeds else (),
                    transferred_accuracy=seed_mean(match, "test_accuracy", seeds),
                    own_accuracy=seed_mean(own, "test_accuracy", seeds),
                )
            )  # fmt: skip
    order = {(c.dataset, c.method, c.backbone): i for i, c in enumerate(configs)}
    rows.sort(key=lambda r: (r.dataset, order[(r.dataset, r.method, r.source)], r.target))
    return rows


@dataclass(frozen=True)
class TransferSummary:
    """One method's transfer pairs in a line: mean and largest loss (fractions), and how often the source's
    choice differed from the target's own."""

    dataset: str
    method: str
    pairs: int
    changed: int
    mean_loss: float
    max_loss: float


def summarize_transfer(rows: Sequence[TransferRow]) -> list[TransferSummary]:
    groups: dict[tuple[str, str], list[TransferRow]] = {}
    for row in rows:
        groups.setdefault((row.dataset, row.method), []).append(row)
    out = []
    for (dataset, method), group in groups.items():
        losses = [r.loss for r in group if math.isfinite(r.loss)]
        out.append(
            TransferSummary(
                dataset=dataset, method=method, pairs=len(group),
                changed=sum(r.setting != r.own_setting for r in group),
                mean_loss=statistics.fmean(losses) if losses else float("nan"),
                max_loss=max(losses) if losses else float("nan"),
            )
        )  # fmt: skip
    return out
