"""The ``compute_metrics`` callable for Trainer, and offline loading of the local ``evaluate`` modules.

``build_compute_metrics(names)`` returns ``compute_metrics(eval_pred) -> {name: float}`` with the keys ``accuracy``,
``top5_accuracy``, ``ece`` (``ECE_BINS`` equal-width bins) and ``nll`` (see :mod:`lsr_hf.metrics.functional` for the formulas);
Trainer prefixes them with ``eval_``. Clip-level accuracy for GTZAN needs nothing special here: the audio model
already returns segment-averaged clip logits at evaluation.

Two backends give the same numbers (the tests check it):

* ``"functional"`` (default) calls the numpy functions directly, on the logits as they are (no copies);
* ``"evaluate"`` goes through the local ``evaluate`` modules, loaded once by path (offline, in memory) when the
  callable is built. ``evaluate`` stores the logits in Arrow and hands them back as nested Python lists (one
  Python float per logit), so it is the slower choice for large evaluation sets (measured: docs/PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lsr_hf.metrics.functional import (
    ECE_BINS,
    accuracy,
    expected_calibration_error,
    negative_log_likelihood,
    top_k_accuracy,
)

if TYPE_CHECKING:  # importing evaluate / transformers is slow; only needed for annotations here
    import evaluate
    from transformers import EvalPrediction

@dataclass(frozen=True)
class MetricSpec:
    """One evaluation metric: ``function(logits, labels) -> float`` (``lsr_hf.metrics.functional``) and the label
    cards and reports give it. The local ``evaluate`` module of the same id lives in ``modules/<id>``."""

    function: Callable[[np.ndarray, np.ndarray], float]
    label: str


METRIC_SPECS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec(accuracy, "accuracy"),
    "top5_accuracy": MetricSpec(partial(top_k_accuracy, k=5), "top-5 accuracy"),
    "ece": MetricSpec(partial(expected_calibration_error, n_bins=ECE_BINS), f"ECE ({ECE_BINS} bins)"),
    "nll": MetricSpec(negative_log_likelihood, "NLL"),
}
METRIC_NAMES = tuple(METRIC_SPECS)
BACKENDS = ("functional", "evaluate")
MODULES_DIR = Path(__file__).resolve().parent / "modules"


def _check_name(name: str) -> str:
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; allowed names: {', '.join(METRIC_NAMES)}")
    return name


def metric_module_path(name: str) -> Path:
    """Directory of the local ``evaluate`` module ``name`` (``<package>/metrics/modules/<name>``)."""
    return MODULES_DIR / _check_name(name)


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load one of our ``evaluate`` modules by path, which needs no network (works with ``HF_HUB_OFFLINE=1``).

    The path is resolved from this package's ``__file__``, so it works from a source checkout, an editable or a
    regular install. Extra keyword arguments go to ``evaluate.load``; ``keep_in_memory`` defaults to ``True`` so
    that no Arrow cache files or file locks are created (each rank computes on already-gathered predictions).
    """
    import evaluate

    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(metric_module_path(name)), **kwargs)


def _split_eval_prediction(eval_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) from an ``EvalPrediction`` or a ``(predictions, label_ids)`` pair."""
    if hasattr(eval_pred, "predictions"):
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
    else:
        predictions, labels = eval_pred
    if isinstance(predictions, (tuple, list)):  # models that return extra outputs: logits come first
        if len(predictions) == 0:
            raise ValueError("predictions is an empty tuple; expected the logits as its first element")
        predictions = predictions[0]
    if labels is None:
        raise ValueError("the evaluation set has no labels (label_ids is None); metrics need a 'labels' column")
    return np.asarray(predictions), np.asarray(labels)


def build_compute_metrics(
    names: Sequence[str] = METRIC_NAMES, backend: str = "functional"
) -> Callable[[EvalPrediction], dict[str, float]]:
    """Return ``compute_metrics(eval_pred) -> {name: value}`` for ``Trainer(compute_metrics=...)``.

    ``names`` is a subset of ``("accuracy", "top5_accuracy", "ece", "nll")``; an unknown name raises ``ValueError``
    listing the allowed ones. ``backend="evaluate"`` loads the ``evaluate`` modules here, once; the default
    ``"functional"`` calls the numpy functions (same values, much faster on large evaluation sets).
    """
    if isinstance(names, str):
        raise ValueError(f"names must be a sequence of metric names, e.g. ({names!r},), not a single string")
    names = tuple(dict.fromkeys(_check_name(n) for n in names))
    if not names:
        raise ValueError(f"names is empty; choose from {', '.join(METRIC_NAMES)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")

    if backend == "evaluate":
        modules = {name: load_metric(name) for name in names}

        def compute_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
            logits, labels = _split_eval_prediction(eval_pred)
            return {
                name: float(modules[name].compute(predictions=logits, references=labels)[name]) for name in names
            }

    else:

        def compute_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
            logits, labels = _split_eval_prediction(eval_pred)
            return {name: METRIC_SPECS[name].function(logits, labels) for name in names}

    return compute_metrics
