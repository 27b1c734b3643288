"""Classification metrics for evaluation: accuracy, top-5 accuracy, expected calibration error, NLL.

Plain numpy functions (:mod:`lsr_hf.metrics.functional`) are the implementation; local ``evaluate`` modules
(``modules/<name>/<name>.py``, loaded offline by path with :func:`load_metric`) wrap them, and
:func:`build_compute_metrics` makes the ``compute_metrics`` callable that Trainer expects.
"""

from lsr_hf.metrics.compute import METRIC_NAMES, METRIC_SPECS, MetricSpec, build_compute_metrics, load_metric, metric_module_path
from lsr_hf.metrics.functional import (
    IGNORE_INDEX,
    accuracy,
    expected_calibration_error,
    log_softmax,
    negative_log_likelihood,
    top_k_accuracy,
)

__all__ = [
    "IGNORE_INDEX",
    "METRIC_NAMES",
    "METRIC_SPECS",
    "MetricSpec",
    "accuracy",
    "build_compute_metrics",
    "expected_calibration_error",
    "load_metric",
    "log_softmax",
    "metric_module_path",
    "negative_log_likelihood",
    "top_k_accuracy",
]
