"""Top-1 accuracy from logits, as a local ``evaluate`` module (a wrapper over ``lsr_hf.metrics.functional``).

Load it by path, offline: ``lsr_hf.metrics.load_metric("accuracy")``.
"""

import datasets
import evaluate
import numpy as np

from lsr_hf.metrics.functional import accuracy

_DESCRIPTION = (
    "Top-1 accuracy computed from logits: the fraction of labelled rows whose largest logit is the true class, "
    "(1/M) sum_i 1[argmax_k z_ik = c_i]. Ties go to the lowest class index. Rows labelled -100 are ignored."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: (N, K) logits, one row of class scores per example.
    references: (N,) integer labels in [0, K); -100 marks a row to ignore.
Returns:
    accuracy (float): in [0, 1].
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
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
        return {"accuracy": accuracy(np.asarray(predictions, dtype=np.float64), np.asarray(references))}
