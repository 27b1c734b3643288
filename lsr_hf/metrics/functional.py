"""Classification metrics on logits, as plain numpy functions.

These are the reference implementations; the local ``evaluate`` modules and ``build_compute_metrics`` are thin
wrappers over them. Every function takes

* ``logits``: an (N, K) array of any real dtype (float16/32/64 ...); it is upcast to float64 first, and
* ``labels``: an (N,) integer array with values in [0, K); rows whose label is -100 are ignored (the convention of
  ``torch.nn.functional.cross_entropy`` and of Trainer's padding),

and returns a Python ``float`` over the M kept rows. Notation: z = one row of logits, c = its label,
p = softmax(z) computed stably as exp(z - lse(z)) with lse(z) = max(z) + log Σ_k exp(z_k - max(z)),
ŷ = argmax_k z_k (the first index among ties), conf = max_k p_k.

Inputs that are not (N, K) / (N,), labels outside [0, K) other than -100, non-integer labels, and inputs that leave
no labelled row raise ``ValueError``. This module depends on numpy only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

ECE_BINS = 15  # equal-width confidence bins of every ECE and reliability diagram the project reports

IGNORE_INDEX = -100

__all__ = [
    "IGNORE_INDEX",
    "accuracy",
    "top_k_accuracy",
    "expected_calibration_error",
    "negative_log_likelihood",
    "log_softmax",
    "reliability_bins",
]


def _prepare(logits: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes/labels, drop rows labelled -100, and return (float64 logits, int64 labels)."""
    z = np.asarray(logits)
    y = np.asarray(labels)
    if z.ndim != 2:
        raise ValueError(f"logits must be a 2-D (N, K) array, got shape {z.shape}")
    if not (np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer)):
        raise ValueError(f"logits must be a real-valued array, got dtype {z.dtype}")
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D (N,) array, got shape {y.shape}")
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"logits and labels disagree on N: {z.shape[0]} rows of logits, {y.shape[0]} labels")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    n_classes = z.shape[1]
    if n_classes < 1:
        raise ValueError("logits must have at least one class column (K >= 1)")
    keep = y != IGNORE_INDEX
    z = z[keep].astype(np.float64)
    y = y[keep].astype(np.int64)
    if y.size == 0:
        raise ValueError(f"no labelled rows: every label is {IGNORE_INDEX} (ignored) or the input is empty")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        raise ValueError(
            f"labels must lie in [0, {n_classes}) or equal {IGNORE_INDEX}; found {y[bad][:5].tolist()}"
        )
    return z, y


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log softmax, log p_k = z_k - lse(z), with lse(z) = m + log Σ_k exp(z_k - m), m = max_k z_k.

    Computed in float64; finite for any finite logits (the largest shifted term is exp(0) = 1).
    """
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return z - lse


def _label_rank(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rank of the true class in each row (0 = top): #{k : z_k > z_c} + #{k < c : z_k = z_c}.

    Ties are broken towards the lower class index, as ``np.argmax`` does, so rank 0 ⇔ argmax(z) = c.
    """
    n, k = z.shape
    z_c = z[np.arange(n), y][:, None]
    lower_index = np.arange(k)[None, :] < y[:, None]
    return (z > z_c).sum(axis=1) + ((z == z_c) & lower_index).sum(axis=1)


def accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy: (1/M) Σ_i 1[argmax_k z_ik = c_i] over the M rows whose label is not -100.

    Ties go to the lowest class index (``np.argmax``).
    """
    z, y = _prepare(logits, labels)
    return float(np.mean(np.argmax(z, axis=1) == y))


def top_k_accuracy(logits: ArrayLike, labels: ArrayLike, k: int = 5) -> float:
    """Top-k accuracy: (1/M) Σ_i 1[rank_i(c_i) < k], rank_i(c) = #{j : z_ij > z_ic} + #{j < c : z_ij = z_ic}.

    ``k`` is clipped to K (with k ≥ K every row counts as correct). Ties are broken towards the lower class index,
    consistently with :func:`accuracy`, so ``top_k_accuracy(..., k=1) == accuracy(...)``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    z, y = _prepare(logits, labels)
    k_eff = min(int(k), z.shape[1])
    return float(np.mean(_label_rank(z, y) < k_eff))


def expected_calibration_error(logits: ArrayLike, labels: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error with equal-width confidence bins (Naeini et al. 2015; Guo et al. 2017).

    With conf_i = max_k softmax(z_i)_k, ŷ_i = argmax_k z_ik and the M labelled rows split into bins
    B_b = {i : lo_b < conf_i ≤ hi_b}, lo_b = b / n_bins, hi_b = (b + 1) / n_bins, b = 0 … n_bins - 1
    (edges from ``np.linspace(0, 1, n_bins + 1)``; the first bin also holds conf = 0, i.e. it is [0, hi_0]):

        ECE = Σ_b |B_b| / M · | acc(B_b) − conf(B_b) |,
        acc(B_b) = (1/|B_b|) Σ_{i∈B_b} 1[ŷ_i = c_i],   conf(B_b) = (1/|B_b|) Σ_{i∈B_b} conf_i.

    Empty bins contribute 0. The result lies in [0, 1].
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    conf, correct, bins = _confidence_bins(logits, labels, n_bins)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    gap = np.bincount(bins, weights=correct - conf, minlength=n_bins)  # |B_b| · (acc(B_b) − conf(B_b))
    return float(np.abs(gap).sum() / count.sum())


def reliability_bins(
    logits: ArrayLike, labels: ArrayLike, n_bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin statistics of a reliability diagram, with the bins of :func:`expected_calibration_error`.

    Returns three arrays of length ``n_bins``: ``confidence`` = conf(B_b) (mean max-probability in the bin),
    ``accuracy`` = acc(B_b) (fraction of correct top-1 predictions in the bin) and ``count`` = |B_b| (int64).
    Empty bins have count 0 and NaN confidence and accuracy. By construction
    ``Σ_b count_b · |accuracy_b − confidence_b| / Σ_b count_b`` (over non-empty bins) is the ECE.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    conf, correct, bins = _confidence_bins(logits, labels, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(bins, weights=conf, minlength=n_bins) / count
        accuracy_ = np.bincount(bins, weights=correct, minlength=n_bins) / count
    empty = count == 0
    confidence[empty] = np.nan
    accuracy_[empty] = np.nan
    return confidence, accuracy_, count.astype(np.int64)


def _confidence_bins(logits: ArrayLike, labels: ArrayLike, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(conf_i, 1[ŷ_i = c_i] as float, bin index of conf_i) for the labelled rows; bins as in the ECE docstring."""
    z, y = _prepare(logits, labels)
    log_p = log_softmax(z)
    conf = np.exp(log_p.max(axis=1))
    correct = (np.argmax(z, axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    # searchsorted(side="left") gives i with edges[i-1] < conf <= edges[i]: bin i-1, i.e. the (lo, hi] convention;
    # conf = 0 gives i = 0 and is clipped into the first bin, conf slightly above 1 by rounding into the last.
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, int(n_bins) - 1)
    return conf, correct, bins


def negative_log_likelihood(logits: ArrayLike, labels: ArrayLike) -> float:
    """Mean negative log-likelihood: (1/M) Σ_i [lse(z_i) − z_{i,c_i}] = −(1/M) Σ_i log softmax(z_i)_{c_i}.

    Computed in float64 with the max-shifted log-sum-exp; rows labelled -100 are skipped (as
    ``F.cross_entropy(..., ignore_index=-100)`` with mean reduction).
    """
    z, y = _prepare(logits, labels)
    log_p = log_softmax(z)
    return float(-np.mean(log_p[np.arange(y.shape[0]), y]))
