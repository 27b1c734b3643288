"""What the local ``evaluate`` modules (``modules/<id>/<id>.py``) share: logits in, labels in, one number out.

A module subclasses :class:`LogitsMetric`, sets ``metric_id``, its texts and ``score`` (a function of
:mod:`lsr_hf.metrics.functional`), and is loaded by path (``lsr_hf.metrics.load_metric``), online or offline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import datasets
import evaluate
import numpy as np

# the inputs every module takes: (N, K) logits and (N,) integer labels, -100 marking a row to ignore
LOGITS_FEATURES = datasets.Features(
    {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
)
INPUTS = """
Args:
    predictions: (N, K) logits, one row of class scores per example.
    references: (N,) integer labels in [0, K); -100 marks a row to ignore.
"""


class LogitsMetric(evaluate.Metric):
    """An ``evaluate`` metric computed by ``score(logits, labels, **kwargs) -> float``, returned as
    ``{metric_id: value}``; the logits are read as float64."""

    metric_id: ClassVar[str]
    description: ClassVar[str]
    returns: ClassVar[str]  # the "Returns:" lines of the inputs description (and any extra argument before it)
    citation: ClassVar[str] = ""
    score: ClassVar[Callable[..., float]]

    @classmethod
    def inputs_description(cls) -> str:
        return INPUTS + cls.returns

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.description,
            citation=self.citation,
            inputs_description=self.inputs_description(),
            features=LOGITS_FEATURES,
        )

    def _compute(self, predictions: Any, references: Any, **kwargs: Any) -> dict[str, float]:
        logits = np.asarray(predictions, dtype=np.float64)
        return {self.metric_id: float(type(self).score(logits, np.asarray(references), **kwargs))}
