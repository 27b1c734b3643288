"""Top-5 accuracy from logits, as a local ``evaluate`` module (a wrapper over ``lsr_hf.metrics.functional``).

Load it by path, offline: ``lsr_hf.metrics.load_metric("top5_accuracy")``.
"""

import datasets
import evaluate
import numpy as np

from lsr_hf.metrics.functional import top_k_accuracy

_DESCRIPTION = (
    "Top-k accuracy (k = 5 by default) computed from logits: the fraction of labelled rows whose true class is "
    "among the k largest logits, (1/M) sum_i 1[rank_i(c_i) < k]. k is clipped to the number of classes; ties are "
    "broken towards the lower class index. Rows labelled -100 are ignored."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: (N, K) logits, one row of class scores per example.
    references: (N,) integer labels in [0, K); -100 marks a row to ignore.
    k (int, optional): how many top classes count as a hit; default 5.
Returns:
    top5_accuracy (float): in [0, 1] (the key stays `top5_accuracy` whatever k is).
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Top5Accuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k: int = 5) -> dict:
        logits = np.asarray(predictions, dtype=np.float64)
        return {"top5_accuracy": top_k_accuracy(logits, np.asarray(references), k=k)}
