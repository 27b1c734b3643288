"""Tests for lsr_hf.metrics against independent references (hand-made cases, scikit-learn, torch, literal loops)."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import log_loss, top_k_accuracy_score

from lsr_hf.metrics import (
    METRIC_NAMES,
    accuracy,
    build_compute_metrics,
    expected_calibration_error,
    load_metric,
    metric_module_path,
    negative_log_likelihood,
    top_k_accuracy,
)

FUNCTIONS = {
    "accuracy": accuracy,
    "top5_accuracy": lambda z, y: top_k_accuracy(z, y, k=5),
    "ece": lambda z, y: expected_calibration_error(z, y, n_bins=15),
    "nll": negative_log_likelihood,
}


def _random_case(n: int = 300, k: int = 10, seed: int = 0, scale: float = 3.0, ignore_frac: float = 0.0):
    rng = np.random.default_rng(seed)
    logits = (scale * rng.standard_normal((n, k))).astype(np.float32)
    labels = rng.integers(0, k, size=n)
    if ignore_frac:
        labels[rng.random(n) < ignore_frac] = -100
    return logits, labels


def _ece_loop_reference(logits: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """ECE written out bin by bin, with softmax from torch, as an independent reference."""
    keep = labels != -100
    z = torch.as_tensor(logits[keep], dtype=torch.float64)
    conf = torch.softmax(z, dim=1).max(dim=1).values
    pred = z.argmax(dim=1)  # from the logits: probabilities can tie by rounding where logits do not
    correct = (pred == torch.as_tensor(labels[keep])).double()
    total = 0.0
    n = conf.numel()
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        in_bin = (conf > lo) & (conf <= hi)
        if b == 0:
            in_bin |= conf == 0.0
        if b == n_bins - 1:
            in_bin |= conf > 1.0  # rounding can only push a probability a hair above 1
        count = int(in_bin.sum())
        if count:
            total += count / n * abs(float(correct[in_bin].mean()) - float(conf[in_bin].mean()))
    return total


# ---------------------------------------------------------------------------------------------------- accuracy


def test_accuracy_hand_case_with_ties_and_ignored_rows():
    logits = np.array(
        [
            [2.0, 1.0, 0.0],  # pred 0, label 0: right
            [0.0, 5.0, 5.0],  # tie 1/2 -> pred 1 (lowest index), label 2: wrong
            [1.0, 1.0, 1.0],  # full tie -> pred 0, label 0: right
            [0.0, 0.0, 9.0],  # ignored
            [3.0, 4.0, -1.0],  # pred 1, label 0: wrong
        ]
    )
    labels = np.array([0, 2, 0, -100, 0])
    assert accuracy(logits, labels) == 0.5
    assert top_k_accuracy(logits, labels, k=1) == 0.5
    # top-2: row 2 (label 2 is second after tie-break) and row 5 (label 0 second) become right
    assert top_k_accuracy(logits, labels, k=2) == 1.0


def test_top_k_hand_case():
    logits = np.array([[0.1, 0.5, 0.3, 0.9, 0.2], [5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    labels = np.array([2, 4, 4])  # ranks 2, 4, 0
    assert top_k_accuracy(logits, labels, k=1) == pytest.approx(1 / 3)
    assert top_k_accuracy(logits, labels, k=2) == pytest.approx(1 / 3)
    assert top_k_accuracy(logits, labels, k=3) == pytest.approx(2 / 3)
    assert top_k_accuracy(logits, labels, k=4) == pytest.approx(2 / 3)
    assert top_k_accuracy(logits, labels, k=5) == 1.0


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("seed", [0, 1])
def test_top_k_matches_sklearn(k, seed):
    logits, labels = _random_case(n=400, k=10, seed=seed)  # continuous logits: no ties
    expected = top_k_accuracy_score(labels, logits, k=k, labels=np.arange(10))
    assert top_k_accuracy(logits, labels, k=k) == pytest.approx(expected, abs=1e-12)
    if k == 1:
        assert accuracy(logits, labels) == pytest.approx(expected, abs=1e-12)


def test_top_k_clips_k_to_num_classes():
    logits, labels = _random_case(n=50, k=3, seed=2)
    assert accuracy(logits, labels) < 1.0
    assert top_k_accuracy(logits, labels, k=5) == 1.0
    assert top_k_accuracy(logits, labels, k=3) == 1.0
    assert top_k_accuracy(logits, labels, k=2) < 1.0


@pytest.mark.parametrize("bad_k", [0, -1, 2.0, True])
def test_top_k_rejects_bad_k(bad_k):
    logits, labels = _random_case(n=5, k=4)
    with pytest.raises(ValueError, match="k must be"):
        top_k_accuracy(logits, labels, k=bad_k)


# ---------------------------------------------------------------------------------------------------- NLL


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nll_matches_torch_cross_entropy_float64(seed):
    logits, labels = _random_case(n=257, k=17, seed=seed, ignore_frac=0.2)
    expected = F.cross_entropy(
        torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels), ignore_index=-100
    ).item()
    assert negative_log_likelihood(logits, labels) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_nll_matches_sklearn_log_loss():
    logits, labels = _random_case(n=300, k=7, seed=3, scale=1.5)
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()
    expected = log_loss(labels, probs, labels=np.arange(7))
    assert negative_log_likelihood(logits, labels) == pytest.approx(expected, rel=1e-9)


def test_nll_hand_case_and_large_logits_are_stable():
    # uniform logits: NLL = log K exactly
    assert negative_log_likelihood(np.zeros((4, 8)), np.array([0, 3, 7, 1])) == pytest.approx(math.log(8))
    # |z| ~ 1e4 in float32 (naive exp overflows): row 1 is confidently right (NLL ~ 0),
    # row 2 wrong by a margin of 2e4 (NLL = 2e4 + log(1 + e^-2e4) = 2e4)
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=np.float32)
    labels = np.array([0, 0])
    value = negative_log_likelihood(logits, labels)
    assert math.isfinite(value)
    assert value == pytest.approx((0.0 + 2e4) / 2, rel=1e-12)
    expected = F.cross_entropy(torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels)).item()
    assert value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_any_float_dtype_is_upcast_exactly(dtype):
    logits, labels = _random_case(n=64, k=6, seed=4)
    low = logits.astype(dtype)
    up = low.astype(np.float64)
    for name, fn in FUNCTIONS.items():
        assert fn(low, labels) == fn(up, labels), name


# ---------------------------------------------------------------------------------------------------- ECE


def test_ece_hand_computed_four_samples():
    # logits = log(p) so softmax gives p back; confidences 0.9, 0.85, 0.7, 0.55 (away from the 5-bin edges)
    probs = np.array([[0.9, 0.1], [0.15, 0.85], [0.3, 0.7], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1])  # right, wrong, right, wrong
    # bin (0.8, 1.0]: rows 1-2, acc 0.5, conf 0.875 -> 2/4 * 0.375 = 0.1875
    # bin (0.6, 0.8]: row 3,    acc 1,   conf 0.7   -> 1/4 * 0.3   = 0.075
    # bin (0.4, 0.6]: row 4,    acc 0,   conf 0.55  -> 1/4 * 0.55  = 0.1375
    assert expected_calibration_error(np.log(probs), labels, n_bins=5) == pytest.approx(0.4, abs=1e-12)
    # one bin: |mean acc - mean conf| = |0.5 - 0.75|
    assert expected_calibration_error(np.log(probs), labels, n_bins=1) == pytest.approx(0.25, abs=1e-12)


def test_ece_bin_edges_are_left_open_right_closed():
    # conf exactly 0.5 (tied logits) belongs to (0, 0.5], conf exactly 1.0 to (0.5, 1]
    logits = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 3.0]])
    labels = np.array([0, 1, 1])
    conf2 = 1 / (1 + math.exp(-3.0))
    # bins of n_bins=2: {row 1: right, conf .5} and {row 2: wrong, conf 1; row 3: right, conf2}
    expected = 1 / 3 * abs(1 - 0.5) + 2 / 3 * abs(0.5 - (1.0 + conf2) / 2)
    assert expected_calibration_error(logits, labels, n_bins=2) == pytest.approx(expected, abs=1e-12)
    # had 0.5 gone to the upper bin, the value would differ
    wrong = abs(2 / 3 - (0.5 + 1.0 + conf2) / 3)
    assert abs(expected - wrong) > 0.1
    assert expected_calibration_error(logits, labels, n_bins=2) == pytest.approx(
        _ece_loop_reference(logits, labels, 2), abs=1e-12
    )


@pytest.mark.parametrize("n_bins", [1, 2, 7, 15, 50])
@pytest.mark.parametrize("seed", [0, 5])
def test_ece_matches_loop_over_bins(n_bins, seed):
    logits, labels = _random_case(n=500, k=10, seed=seed, scale=2.0, ignore_frac=0.1)
    assert expected_calibration_error(logits, labels, n_bins=n_bins) == pytest.approx(
        _ece_loop_reference(logits, labels, n_bins), abs=1e-12
    )


def _synthetic_calibration(n: int, accuracy_shift: float, seed: int):
    """Two classes, confidence c ~ U(0.55, 0.95); the prediction (class 0) is right with probability c + shift."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.55, 0.95, size=n)
    logits = np.log(np.stack([conf, 1 - conf], axis=1))
    right = rng.random(n) < conf + accuracy_shift
    labels = np.where(right, 0, 1)
    return logits, labels


def test_ece_near_zero_for_calibrated_predictions():
    logits, labels = _synthetic_calibration(n=200_000, accuracy_shift=0.0, seed=0)
    assert expected_calibration_error(logits, labels) < 0.01


def test_ece_measures_overconfidence():
    logits, labels = _synthetic_calibration(n=200_000, accuracy_shift=-0.1, seed=1)
    assert expected_calibration_error(logits, labels) == pytest.approx(0.1, abs=0.01)


@settings(max_examples=60, deadline=None)
@given(
    logits=arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 6)),
                  elements=st.floats(-50, 50, allow_nan=False)),
    n_bins=st.integers(1, 30),
    data=st.data(),
)
def test_ece_in_unit_interval_and_matches_loop(logits, n_bins, data):
    n, k = logits.shape
    labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    value = expected_calibration_error(logits, labels, n_bins=n_bins)
    assert 0.0 <= value <= 1.0
    # a confidence within rounding of a bin edge (e.g. 1/3 from three tied logits) may fall on either side in two
    # float implementations; exact edges are pinned by test_ece_bin_edges_are_left_open_right_closed
    conf = torch.softmax(torch.as_tensor(logits), dim=1).max(dim=1).values.numpy()
    interior_edges = np.arange(1, n_bins) / n_bins
    assume(interior_edges.size == 0 or np.abs(conf[:, None] - interior_edges[None, :]).min() > 1e-9)
    assert value == pytest.approx(_ece_loop_reference(logits, labels, n_bins), abs=1e-9)


@pytest.mark.parametrize("bad", [0, -3, 1.5, True])
def test_ece_rejects_bad_n_bins(bad):
    logits, labels = _random_case(n=5, k=4)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(logits, labels, n_bins=bad)


# ---------------------------------------------------------------------------------------------------- input handling


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_ignored_labels_equal_dropping_the_rows(name):
    logits, labels = _random_case(n=200, k=8, seed=6, ignore_frac=0.3)
    keep = labels != -100
    assert 0 < keep.sum() < 200
    fn = FUNCTIONS[name]
    assert fn(logits, labels) == fn(logits[keep], labels[keep])
    # what sits in an ignored row does not matter
    scrambled = logits.copy()
    scrambled[~keep] = 1e6
    assert fn(scrambled, labels) == fn(logits, labels)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_invalid_inputs_raise_value_error(name):
    fn = FUNCTIONS[name]
    logits, labels = _random_case(n=6, k=4)
    with pytest.raises(ValueError, match="no labelled rows"):
        fn(logits, np.full(6, -100))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fn(logits, np.array([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fn(logits, np.array([0, 1, 2, 3, -1, 0]))
    with pytest.raises(ValueError, match="2-D"):
        fn(logits[0], labels[:1])
    with pytest.raises(ValueError, match="disagree on N"):
        fn(logits, labels[:5])
    with pytest.raises(ValueError, match="integers"):
        fn(logits, labels.astype(np.float64))


# ---------------------------------------------------------------------------------------------------- evaluate modules


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_module_files_live_in_the_package():
    import lsr_hf.metrics

    package_dir = Path(lsr_hf.metrics.__file__).resolve().parent
    for name in METRIC_NAMES:
        assert metric_module_path(name) == package_dir / "modules" / name
        assert (metric_module_path(name) / f"{name}.py").is_file()


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_evaluate_modules_load_by_path_offline_and_match_functions(name, no_network):
    import evaluate

    module = load_metric(name)
    assert isinstance(module, evaluate.EvaluationModule)
    for seed, k in [(0, 10), (1, 3)]:
        logits, labels = _random_case(n=120, k=k, seed=seed, ignore_frac=0.15)
        result = module.compute(predictions=logits, references=labels)
        assert set(result) == {name}
        assert result[name] == pytest.approx(FUNCTIONS[name](logits, labels), rel=1e-12, abs=1e-15)
    # add_batch accumulation gives the same as one call on everything
    logits, labels = _random_case(n=90, k=6, seed=7)
    module.add_batch(predictions=logits[:40], references=labels[:40])
    module.add_batch(predictions=logits[40:], references=labels[40:])
    assert module.compute()[name] == pytest.approx(FUNCTIONS[name](logits, labels), rel=1e-12, abs=1e-15)


def test_evaluate_module_kwargs_are_forwarded(no_network):
    logits, labels = _random_case(n=100, k=10, seed=8)
    top = load_metric("top5_accuracy").compute(predictions=logits, references=labels, k=2)
    assert top["top5_accuracy"] == top_k_accuracy(logits, labels, k=2)
    ece = load_metric("ece").compute(predictions=logits, references=labels, n_bins=4)
    assert ece["ece"] == pytest.approx(_ece_loop_reference(logits, labels, 4), abs=1e-12)


def test_load_metric_rejects_unknown_name():
    with pytest.raises(ValueError, match="accuracy, top5_accuracy, ece, nll"):
        load_metric("f1")


# ---------------------------------------------------------------------------------------------------- compute_metrics


@pytest.mark.parametrize("backend", ["functional", "evaluate"])
def test_build_compute_metrics_on_eval_prediction(backend, no_network):
    from transformers import EvalPrediction

    logits, labels = _random_case(n=150, k=12, seed=9, ignore_frac=0.1)
    compute_metrics = build_compute_metrics(backend=backend)
    hidden = np.zeros((150, 4), dtype=np.float32)
    for predictions in (logits, (logits, hidden)):  # a tuple: logits come first
        out = compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels))
        assert list(out) == ["accuracy", "top5_accuracy", "ece", "nll"]
        assert all(type(v) is float for v in out.values())
        keep = labels != -100
        assert out["accuracy"] == pytest.approx(np.mean(logits[keep].argmax(1) == labels[keep]))
        assert out["top5_accuracy"] == pytest.approx(
            top_k_accuracy_score(labels[keep], logits[keep], k=5, labels=np.arange(12))
        )
        assert out["ece"] == pytest.approx(_ece_loop_reference(logits, labels, 15), abs=1e-12)
        expected_nll = F.cross_entropy(torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels)).item()
        assert out["nll"] == pytest.approx(expected_nll, rel=1e-12)


def test_backends_agree_and_subsets_work(no_network):
    logits, labels = _random_case(n=80, k=5, seed=10)
    pair = (logits, labels)
    a = build_compute_metrics(backend="functional")(pair)
    b = build_compute_metrics(backend="evaluate")(pair)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-15)
    sub = build_compute_metrics(["nll", "accuracy"])(pair)
    assert list(sub) == ["nll", "accuracy"]
    assert sub == {"nll": a["nll"], "accuracy": a["accuracy"]}


def test_build_compute_metrics_errors():
    with pytest.raises(ValueError, match="allowed names: accuracy, top5_accuracy, ece, nll"):
        build_compute_metrics(["accuracy", "top1"])
    with pytest.raises(ValueError, match="single string"):
        build_compute_metrics("accuracy")
    with pytest.raises(ValueError, match="empty"):
        build_compute_metrics([])
    with pytest.raises(ValueError, match="backend"):
        build_compute_metrics(backend="torchmetrics")
    compute_metrics = build_compute_metrics()
    logits, _ = _random_case(n=4, k=3)
    with pytest.raises(ValueError, match="no labels"):
        compute_metrics((logits, None))
