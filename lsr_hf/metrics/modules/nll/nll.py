"""Mean negative log-likelihood from logits, as a local ``evaluate`` module (a wrapper over
``lsr_hf.metrics.functional``).

Load it by path, offline: ``lsr_hf.metrics.load_metric("nll")``.
"""

import datasets
import evaluate
import numpy as np

from lsr_hf.metrics.functional import negative_log_likelihood

_DESCRIPTION = (
    "Mean negative log-likelihood of the labels under softmax(logits): (1/M) sum_i [lse(z_i) - z_{i,c_i}], "
    "computed in float64 with a max-shifted log-sum-exp. Equals the mean cross-entropy. Rows labelled -100 are "
    "ignored."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: (N, K) logits, one row of class scores per example.
    references: (N,) integer labels in [0, K); -100 marks a row to ignore.
Returns:
    nll (float): >= 0, in nats.
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NegativeLogLikelihood(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references) -> dict:
        logits = np.asarray(predictions, dtype=np.float64)
        return {"nll": negative_log_likelihood(logits, np.asarray(references))}
