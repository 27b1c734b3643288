"""Top-5 accuracy from logits, as a local ``evaluate`` module (a wrapper over ``lsr_hf.metrics.functional``).

Load it by path, offline: ``lsr_hf.metrics.load_metric("top5_accuracy")``.
"""

from functools import partial

from lsr_hf.metrics.functional import top_k_accuracy
from lsr_hf.metrics import module_base  # the module, not its class: evaluate takes the first Metric class it finds


class Top5Accuracy(module_base.LogitsMetric):
    metric_id = "top5_accuracy"
    description = (
        "Top-k accuracy (k = 5 by default) computed from logits: the fraction of labelled rows whose true class is "
        "among the k largest logits, (1/M) sum_i 1[rank_i(c_i) < k]. k is clipped to the number of classes; ties "
        "are broken towards the lower class index. Rows labelled -100 are ignored."
    )
    returns = """    k (int, optional): how many top classes count as a hit; default 5.
Returns:
    top5_accuracy (float): in [0, 1] (the key stays `top5_accuracy` whatever k is).
"""
    score = staticmethod(partial(top_k_accuracy, k=5))
