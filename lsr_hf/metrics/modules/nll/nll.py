"""Mean negative log-likelihood from logits, as a local ``evaluate`` module (a wrapper over
``lsr_hf.metrics.functional``).

Load it by path, offline: ``lsr_hf.metrics.load_metric("nll")``.
"""

from lsr_hf.metrics.functional import negative_log_likelihood
from lsr_hf.metrics import module_base  # the module, not its class: evaluate takes the first Metric class it finds


class NegativeLogLikelihood(module_base.LogitsMetric):
    metric_id = "nll"
    description = (
        "Mean negative log-likelihood of the labels under softmax(logits): (1/M) sum_i [lse(z_i) - z_{i,c_i}], "
        "computed in float64 with a max-shifted log-sum-exp. Equals the mean cross-entropy. Rows labelled -100 are "
        "ignored."
    )
    returns = """Returns:
    nll (float): >= 0, in nats.
"""
    score = staticmethod(negative_log_likelihood)
