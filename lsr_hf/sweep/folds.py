"""k-fold sweeps: each setting's test predictions pooled over the folds of a seed (out-of-fold predictions).

In a sweep with ``folds: k`` the k runs of one setting and seed test disjoint folds that together cover every
example once, so their test predictions concatenate into one prediction per example of the whole dataset. Metrics
of that pool are less noisy than the mean of k per-fold metrics, above all ECE, whose 15 bins are nearly empty on a
fold of a few dozen examples. For each seed whose k folds are all finished, with ``z_s`` the saved logits of the
segments of a clip (audio runs keep them: ``segment_logits`` in ``test_predictions.npz``):

    vote "logits":         z = (1/S) Σ_s z_s                   (the model's default clip vote)
    vote "probabilities":  z = log((1/S) Σ_s softmax(z_s))
    "segments":            every segment scored on its own against its clip's label (calibration per segment)

then accuracy, ECE (15 equal-width bins) and NLL of the pool; the table gives their mean ± sample std over seeds.
Image runs (no segments) have the saved logits only.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lsr_hf.metrics.functional import ECE_BINS, accuracy, expected_calibration_error, negative_log_likelihood
from lsr_hf.models.audio import clip_logits
from lsr_hf.job.outputs import PREDICTIONS_FILE
from lsr_hf.sweep.results import ConfigResult

VOTES = ("logits", "probabilities", "segments")
POOLED_METRICS = ("accuracy", "ece", "nll")


@dataclass(frozen=True)
class PooledRow:
    """One configuration's out-of-fold metrics: ``stats[(vote, metric)] = (mean, std)`` over ``seeds``."""

    config: ConfigResult
    seeds: tuple[int | None, ...]
    num_examples: int
    stats: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)


def pooled_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, ECE (``ECE_BINS`` bins) and NLL of predictions ``logits`` (N, K) for ``labels`` (N,)."""
    return {
        "accuracy": accuracy(logits, labels),
        "ece": expected_calibration_error(logits, labels, n_bins=ECE_BINS),
        "nll": negative_log_likelihood(logits, labels),
    }


def vote_predictions(saved: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(logits, labels) of one run's test predictions for each vote it can give (:data:`VOTES`; only
    ``"logits"``, the saved clip logits, without ``segment_logits``)."""
    labels = np.asarray(saved["labels"])
    if "segment_logits" not in saved:
        return {"logits": (np.asarray(saved["logits"]), labels)}
    segments = torch.from_numpy(np.asarray(saved["segment_logits"], dtype=np.float32))  # (N, S, K)
    return {
        "logits": (clip_logits(segments, "logits").numpy(), labels),
        "probabilities": (clip_logits(segments, "probabilities").numpy(), labels),
        "segments": (segments.reshape(-1, segments.shape[-1]).numpy(), np.repeat(labels, segments.shape[1])),
    }


def pooled_rows(configs: Sequence[ConfigResult]) -> list[PooledRow]:
    """A :class:`PooledRow` for every configuration of a k-fold sweep with at least one seed whose folds
    0 .. k-1 are all finished with saved test predictions; in the order of ``configs``."""
    rows = []
    for config in configs:
        folds = {r.recipe.get("data", {}).get("num_folds") for r in config.runs}
        if len(folds) != 1 or None in folds:
            continue
        (num_folds,) = folds
        by_seed: dict[int | None, dict[int, dict[str, tuple[np.ndarray, np.ndarray]]]] = {}
        for run in config.runs:
            path = run.folder / PREDICTIONS_FILE
            if not path.is_file():
                continue
            with np.load(path, allow_pickle=False) as saved:
                by_seed.setdefault(run.seed, {})[run.fold] = vote_predictions(dict(saved))
        per_seed: dict[int | None, dict[tuple[str, str], float]] = {}
        sizes = set()
        for seed, folds_done in by_seed.items():
            if set(folds_done) != set(range(int(num_folds))):
                continue
            values = {}
            for vote in VOTES:
                if not all(vote in predictions for predictions in folds_done.values()):
                    continue
                logits = np.concatenate([folds_done[f][vote][0] for f in sorted(folds_done)])
                labels = np.concatenate([folds_done[f][vote][1] for f in sorted(folds_done)])
                if vote == "logits":
                    sizes.add(len(labels))
                for metric, value in pooled_metrics(logits, labels).items():
                    values[(vote, metric)] = value
            per_seed[seed] = values
        if not per_seed:
            continue
        stats = {}
        for key in {key for values in per_seed.values() for key in values}:
            numbers = [values[key] for values in per_seed.values() if key in values]
            mean = statistics.fmean(numbers)
            stats[key] = (mean, statistics.stdev(numbers) if len(numbers) > 1 else float("nan"))
        seeds = tuple(sorted(per_seed, key=lambda s: (s is None, s or 0)))
        rows.append(PooledRow(config=config, seeds=seeds, num_examples=max(sizes), stats=stats))
    return rows
