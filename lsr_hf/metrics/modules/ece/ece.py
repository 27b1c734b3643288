"""Expected calibration error from logits, as a local ``evaluate`` module (a wrapper over
``lsr_hf.metrics.functional``).

Load it by path, offline: ``lsr_hf.metrics.load_metric("ece")``.
"""

from lsr_hf.metrics.functional import expected_calibration_error
from lsr_hf.metrics import module_base  # the module, not its class: evaluate takes the first Metric class it finds


class ExpectedCalibrationError(module_base.LogitsMetric):
    metric_id = "ece"
    description = (
        "Expected calibration error with equal-width bins on the max-softmax confidence conf_i = max_k "
        "softmax(z_i)_k: ECE = sum_b |B_b|/M * |acc(B_b) - conf(B_b)|, where bin b holds the rows with b/n_bins < "
        "conf <= (b+1)/n_bins (the first bin also holds conf = 0), acc(B_b) is the fraction of its rows whose argmax "
        "is the label and conf(B_b) their mean confidence. Rows labelled -100 are ignored."
    )
    returns = """    n_bins (int, optional): number of equal-width confidence bins on [0, 1]; default ECE_BINS (15).
Returns:
    ece (float): in [0, 1]; 0 means confidence matches accuracy in every bin.
"""
    citation = """
@inproceedings{naeini2015obtaining,
  title={Obtaining Well Calibrated Probabilities Using Bayesian Binning},
  author={Naeini, Mahdi Pakdaman and Cooper, Gregory F. and Hauskrecht, Milos},
  booktitle={AAAI Conference on Artificial Intelligence},
  year={2015}
}
@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks},
  author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  booktitle={International Conference on Machine Learning},
  year={2017}
}
"""
    score = staticmethod(expected_calibration_error)
