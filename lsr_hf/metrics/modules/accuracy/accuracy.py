"""Top-1 accuracy from logits, as a local ``evaluate`` module (a wrapper over ``lsr_hf.metrics.functional``).

Load it by path, offline: ``lsr_hf.metrics.load_metric("accuracy")``.
"""

from lsr_hf.metrics.functional import accuracy
from lsr_hf.metrics import module_base  # the module, not its class: evaluate takes the first Metric class it finds


class Accuracy(module_base.LogitsMetric):
    metric_id = "accuracy"
    description = (
        "Top-1 accuracy computed from logits: the fraction of labelled rows whose largest logit is the true class, "
        "(1/M) sum_i 1[argmax_k z_ik = c_i]. Ties go to the lowest class index. Rows labelled -100 are ignored."
    )
    returns = """Returns:
    accuracy (float): in [0, 1].
"""
    score = staticmethod(accuracy)
