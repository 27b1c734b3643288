"""Expected calibration error from logits, as a local ``evaluate`` module (a wrapper over
``lsr_hf.metrics.functional``).

Load it by path, offline: ``lsr_hf.metrics.load_metric("ece")``.
"""

import datasets
import evaluate
import numpy as np

from lsr_hf.metrics.functional import ECE_BINS, expected_calibration_error

_DESCRIPTION = (
    "Expected calibration error with equal-width bins on the max-softmax confidence conf_i = max_k softmax(z_i)_k: "
    "ECE = sum_b |B_b|/M * |acc(B_b) - conf(B_b)|, where bin b holds the rows with b/n_bins < conf <= (b+1)/n_bins "
    "(the first bin also holds conf = 0), acc(B_b) is the fraction of its rows whose argmax is the label and "
    "conf(B_b) their mean confidence. Rows labelled -100 are ignored."
)

_KWARGS_DESCRIPTION = """
Args:
    predictions: (N, K) logits, one row of class scores per example.
    references: (N,) integer labels in [0, K); -100 marks a row to ignore.
    n_bins (int, optional): number of equal-width confidence bins on [0, 1]; default 15.
Returns:
    ece (float): in [0, 1]; 0 means confidence matches accuracy in every bin.
"""

_CITATION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExpectedCalibrationError(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, n_bins: int = ECE_BINS) -> dict:
        logits = np.asarray(predictions, dtype=np.float64)
        return {"ece": expected_calibration_error(logits, np.asarray(references), n_bins=n_bins)}
