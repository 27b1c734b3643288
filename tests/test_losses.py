"""The objective (DESIGN §1) against independent references: torch's label smoothing, the Tf-KD reference code
evaluated literally, an explicit-teacher-tensor KL in float64, the analytic gradient, and limit cases."""

import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from lsr_hf import OSTCConfig, OSTCLoss
from lsr_hf import fused_loss
from lsr_hf.losses import METHODS, two_valued_teacher

TWO_VALUED = ("lsr", "tfkd", "lsr_os", "lsr_os_tc")


def batch(b=12, k=7, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(b, k, generator=g, dtype=torch.float64) * scale).to(dtype)
    y = torch.randint(0, k, (b,), generator=g)
    return z, y


def explicit_teacher(method, cfg, labels, k, teacher_logits=None):
    """The virtual teacher q as a full (B, K) float64 tensor, built from the table in DESIGN §1."""
    y = F.one_hot(labels, k).double()
    if method in ("lsr", "lsr_os"):
        return torch.full_like(y, 1.0 / k)
    if method == "lsr_os_tc":
        a = cfg.correct_prob
        return y * a + (1 - y) * (1 - a) / (k - 1)
    if method == "tfkd":
        p_d = y * 0.99 + (1 - y) * 0.01 / (k - 1)
        return F.softmax(p_d / cfg.teacher_temperature, dim=1)
    if method == "kd":
        return F.softmax(teacher_logits.double() / cfg.temperature, dim=1)
    raise AssertionError(method)


def reference_loss(z, y, cfg, teacher_logits=None):
    """(1-α)·CE + α·w·Σ_k q_k (log q_k − log p_τ,k) with an explicit teacher tensor, float64, per DESIGN §1."""
    z = z.double()
    k = z.shape[1]
    ce = F.cross_entropy(z, y)
    if cfg.method == "ce":
        return ce
    tau = {"lsr": 1.0, "tfkd": 1.0}.get(cfg.method, cfg.temperature)
    w = {"lsr": 1.0, "tfkd": cfg.multiplier / k}.get(cfg.method, cfg.temperature**2)
    q = explicit_teacher(cfg.method, cfg, y, k, teacher_logits)
    log_p_tau = F.log_softmax(z / tau, dim=1)
    kl = (q * (q.log() - log_p_tau)).sum(1).mean()
    return (1 - cfg.alpha) * ce + cfg.alpha * w * kl


def make_cfg(method, **kw):
    defaults = dict(alpha=0.6, temperature=3.0, correct_prob=0.4, teacher_temperature=5.0, multiplier=2.0)
    defaults.update(kw)
    return OSTCConfig(method=method, **defaults)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_equals_explicit_teacher_reference(method):
    z, y = batch()
    t = torch.randn_like(z) * 2 if method == "kd" else None
    cfg = make_cfg(method)
    got = OSTCLoss(cfg)(z, y, teacher_logits=t)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, reference_loss(z, y, cfg, t), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 1.0])
def test_lsr_equals_torch_label_smoothing_minus_alpha_log_k(alpha):
    z, y = batch(k=10)
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    ours = OSTCLoss(method="lsr", alpha=alpha)(z1, y)
    torch_ls = F.cross_entropy(z2, y, label_smoothing=alpha)
    torch.testing.assert_close(ours, torch_ls - alpha * math.log(10), rtol=1e-12, atol=1e-12)
    ours.backward()
    torch_ls.backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-12, atol=1e-14)


def test_lsr_os_at_tau_one_equals_lsr_and_tc_at_uniform_equals_lsr_os():
    z, y = batch(k=8)
    lsr = OSTCLoss(method="lsr", alpha=0.3)(z, y)
    os1 = OSTCLoss(method="lsr_os", alpha=0.3, temperature=1.0)(z, y)
    torch.testing.assert_close(os1, lsr, rtol=1e-13, atol=1e-13)
    os4 = OSTCLoss(method="lsr_os", alpha=0.3, temperature=4.0)(z, y)
    tc = OSTCLoss(method="lsr_os_tc", alpha=0.3, temperature=4.0, correct_prob=1 / 8)(z, y)
    torch.testing.assert_close(tc, os4, rtol=1e-13, atol=1e-13)


def tfkd_reference_literal(outputs, labels, alpha, T, multiplier):
    """Tf-KD_reg's loss written as its reference code does it: a Python loop fills a teacher tensor, then
    nn.KLDivLoss() (reduction 'mean' = divide by N·K) of log_softmax(outputs) against softmax(teacher / T)."""
    correct_prob = 0.99
    K = outputs.size(1)
    loss_ce = F.cross_entropy(outputs, labels)
    teacher_soft = torch.ones_like(outputs) * (1 - correct_prob) / (K - 1)
    for i in range(outputs.shape[0]):
        teacher_soft[i, labels[i]] = correct_prob
    loss_soft_regu = torch.nn.KLDivLoss()(F.log_softmax(outputs, dim=1), F.softmax(teacher_soft / T, dim=1))
    return (1.0 - alpha) * loss_ce + alpha * loss_soft_regu * multiplier


@pytest.mark.parametrize("alpha,T,mult,k", [(0.95, 40.0, 1.0, 100), (0.1, 20.0, 100.0, 100), (0.5, 10.0, 50.0, 10)])
def test_tfkd_equals_reference_code(alpha, T, mult, k):
    z, y = batch(b=32, k=k, dtype=torch.float32)
    ours = OSTCLoss(method="tfkd", alpha=alpha, teacher_temperature=T, multiplier=mult)(z, y)
    ref = tfkd_reference_literal(z, y, alpha, T, mult)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_gradient_matches_analytic_formula_float64(method):
    """∂L/∂z = [(1−α)(p − y) + α·w/τ·(p_τ − q)] / B for the batch mean."""
    z, y = batch(b=9, k=6, seed=3)
    t = torch.randn_like(z) if method == "kd" else None
    cfg = make_cfg(method, correct_prob=0.5)
    z.requires_grad_(True)
    OSTCLoss(cfg)(z, y, teacher_logits=t).backward()
    k, b = z.shape[1], z.shape[0]
    alpha = cfg.effective_alpha
    tau = cfg.student_temperature
    w = cfg.kl_weight(k)
    zd = z.detach()
    q = explicit_teacher(method, cfg, y, k, t) if method != "ce" else torch.zeros_like(zd)
    expected = (1 - alpha) * (F.softmax(zd, 1) - F.one_hot(y, k)) + alpha * w / tau * (F.softmax(zd / tau, 1) - q)
    torch.testing.assert_close(z.grad, expected / b, rtol=1e-10, atol=1e-13)


def test_large_temperature_limit_is_logit_variance_penalty():
    """τ²·KL(u ‖ p_τ) → (1/2K)·Σ_k (z_k − z̄)² as τ → ∞."""
    z, y = batch(b=5, k=10)
    cfg = OSTCConfig(method="lsr_os", alpha=1.0, temperature=1e4)
    tau_sq_kl = OSTCLoss(cfg)(z, y)  # α = 1: only τ²·KL, batch mean
    penalty = ((z - z.mean(1, keepdim=True)) ** 2).sum(1).mean() / (2 * 10)
    torch.testing.assert_close(tau_sq_kl, penalty, rtol=1e-3, atol=0)


@pytest.mark.parametrize("method", ["lsr_os", "lsr_os_tc", "tfkd"])
def test_kl_is_zero_exactly_when_student_matches_teacher(method):
    k, tau = 5, 2.0
    cfg = make_cfg(method, temperature=tau, correct_prob=0.6)
    y = torch.tensor([0, 3, 4])
    log_a, log_b = two_valued_teacher(cfg, k)
    tau_s = cfg.student_temperature
    z = torch.full((3, k), log_b * tau_s, dtype=torch.float64)
    z[torch.arange(3), y] = log_a * tau_s  # softmax(z/τ) = q exactly
    kl = OSTCLoss(cfg).components(z, y)["kl"]
    assert abs(kl.item()) < 1e-12
    kl_other = OSTCLoss(cfg).components(z + torch.randn_like(z), y)["kl"]
    assert kl_other.item() > 1e-4


def test_components_parts_and_total():
    z, y = batch()
    cfg = make_cfg("lsr_os_tc")
    parts = OSTCLoss(cfg).components(z, y)
    assert set(parts) == {"total", "ce", "kl"}
    torch.testing.assert_close(parts["ce"], F.cross_entropy(z, y))
    w = cfg.temperature**2
    torch.testing.assert_close(parts["total"], (1 - cfg.alpha) * parts["ce"] + cfg.alpha * w * parts["kl"])


def test_ce_method_ignores_alpha_and_equals_cross_entropy():
    z, y = batch()
    torch.testing.assert_close(OSTCLoss(method="ce", alpha=0.9)(z, y), F.cross_entropy(z, y), rtol=1e-13, atol=0)


@pytest.mark.parametrize("method", TWO_VALUED)
def test_ignore_index_rows_are_skipped(method):
    z, y = batch(b=10)
    y_ign = y.clone()
    y_ign[[1, 4, 7]] = -100
    keep = y_ign != -100
    cfg = make_cfg(method)
    torch.testing.assert_close(OSTCLoss(cfg)(z, y_ign), OSTCLoss(cfg)(z[keep], y[keep]), rtol=1e-13, atol=0)
    if method == "lsr":
        ref = F.cross_entropy(z, y_ign, label_smoothing=cfg.alpha, ignore_index=-100) - cfg.alpha * math.log(7)
        torch.testing.assert_close(OSTCLoss(cfg)(z, y_ign), ref, rtol=1e-12, atol=1e-12)


def test_num_items_in_batch_gives_sum_over_count():
    z, y = batch(b=8)
    loss = OSTCLoss(make_cfg("lsr_os_tc"))
    per_sample_sum = loss(z, y) * 8
    torch.testing.assert_close(loss(z, y, num_items_in_batch=16), per_sample_sum / 16)
    torch.testing.assert_close(loss(z, y, num_items_in_batch=torch.tensor(16)), per_sample_sum / 16)


def test_accepts_model_output_with_logits():
    from transformers.modeling_outputs import SequenceClassifierOutput

    z, y = batch()
    loss = OSTCLoss(make_cfg("lsr_os_tc"))
    torch.testing.assert_close(loss(SequenceClassifierOutput(logits=z), y), loss(z, y))


@settings(max_examples=60, deadline=None)
@given(
    z=arrays(np.float32, (6, 11), elements=st.floats(-1e4, 1e4, width=32)),
    labels=arrays(np.int64, (6,), elements=st.integers(0, 10)),
    method=st.sampled_from(TWO_VALUED),
)
def test_finite_for_huge_logits(z, labels, method):
    z = torch.from_numpy(z).requires_grad_(True)
    loss = OSTCLoss(make_cfg(method, correct_prob=0.3))(z, torch.from_numpy(labels))
    loss.backward()
    assert torch.isfinite(loss)
    assert loss.item() >= -1e-2  # (1-α)·CE + α·w·KL is a sum of non-negative terms (float32 rounding aside)
    assert torch.isfinite(z.grad).all()
    ref = reference_loss(z.detach(), torch.from_numpy(labels), make_cfg(method, correct_prob=0.3))
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-2)


@settings(max_examples=40, deadline=None)
@given(
    z=arrays(np.float32, (4, 9), elements=st.floats(-60, 60, width=32)),
    dtype=st.sampled_from([torch.bfloat16, torch.float16]),
    method=st.sampled_from(METHODS[:-1]),
)
def test_half_precision_inputs_match_float32(z, dtype, method):
    labels = torch.arange(4) % 9
    z32 = torch.from_numpy(z)
    loss_fn = OSTCLoss(make_cfg(method))
    half = z32.to(dtype).requires_grad_(True)
    got = loss_fn(half, labels)
    got.backward()
    assert got.dtype == torch.float32
    assert half.grad.dtype == dtype and torch.isfinite(half.grad.float()).all()
    # the only difference is the rounding of the inputs: equal to the loss of the rounded logits in float32 ...
    torch.testing.assert_close(got, loss_fn(half.detach().float(), labels), rtol=0, atol=0)
    # ... and within the mean-value bound of the float32 loss: each row's gradient has L1 norm
    # ≤ 2(1−α) + 2α·w/τ, so |ΔL| ≤ max|Δz| · (2(1−α) + 2α·w/τ)
    cfg = loss_fn.config
    alpha, k = cfg.effective_alpha, z32.shape[1]
    lipschitz = 2 * (1 - alpha) + 2 * alpha * cfg.kl_weight(k) / cfg.student_temperature
    bound = float((half.detach().float() - z32).abs().max()) * lipschitz + 1e-5
    assert abs(got.item() - loss_fn(z32, labels).item()) <= bound


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(method="lsr_ostc"), "method"),
        (dict(alpha=-0.1), "alpha"),
        (dict(alpha=1.01), "alpha"),
        (dict(alpha="0.5"), "alpha"),
        (dict(temperature=0), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(correct_prob=1.0), "correct_prob"),
        (dict(correct_prob=0.0), "correct_prob"),
        (dict(teacher_temperature=-2), "teacher_temperature"),
        (dict(multiplier=0), "multiplier"),
        (dict(multiplier=True), "multiplier"),
    ],
)
def test_invalid_config_names_field_value_and_range(kwargs, field):
    with pytest.raises(ValueError) as err:
        OSTCConfig(**kwargs)
    message = str(err.value)
    assert message.startswith(field)
    assert repr(next(iter(kwargs.values())))[:6] in message or "nan" in message


def test_correct_prob_below_uniform_is_rejected_when_k_is_known():
    cfg = OSTCConfig(method="lsr_os_tc", correct_prob=0.05)
    z, y = batch(k=10)
    with pytest.raises(ValueError, match=r"correct_prob must be in \[1/K, 1\) = \[0\.1, 1\) for K = 10"):
        OSTCLoss(cfg)(z, y)
    OSTCLoss(cfg)(*batch(k=20))  # 1/20 ≤ 0.05: fine


@pytest.mark.parametrize("bad", [10, -1, -7])
def test_labels_out_of_range_raise_clear_error(bad):
    z, y = batch(k=10)
    y[2] = bad
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\) or -100"):
        OSTCLoss(make_cfg("lsr_os_tc"))(z, y)


def test_kd_requires_teacher_logits_of_same_shape():
    z, y = batch()
    loss = OSTCLoss(make_cfg("kd"))
    with pytest.raises(ValueError, match="teacher_logits"):
        loss(z, y)
    with pytest.raises(ValueError, match="teacher_logits must have the student's shape"):
        loss(z, y, teacher_logits=z[:, :3])


def test_kd_teacher_gets_no_gradient():
    z, y = batch()
    t = torch.randn_like(z).requires_grad_(True)
    OSTCLoss(make_cfg("kd"))(z.requires_grad_(True), y, teacher_logits=t).backward()
    assert t.grad is None


def test_tfkd_teacher_with_tiny_temperature_stays_finite():
    z, y = batch(k=100)
    cfg = OSTCConfig(method="tfkd", alpha=0.5, teacher_temperature=1e-4)
    log_a, log_b = two_valued_teacher(cfg, 100)
    assert log_a == pytest.approx(0.0, abs=1e-12) and log_b < -1000
    assert torch.isfinite(OSTCLoss(cfg)(z, y))


def test_teacher_probabilities_sum_to_one():
    for method in TWO_VALUED:
        for k in (2, 10, 1000):
            log_a, log_b = two_valued_teacher(make_cfg(method, correct_prob=0.6), k)
            assert math.exp(log_a) + (k - 1) * math.exp(log_b) == pytest.approx(1.0, rel=1e-12)


def test_unchecked_loss_skips_the_label_check_only():
    z, y = batch(k=10)
    cfg = make_cfg("lsr_os_tc")
    torch.testing.assert_close(OSTCLoss(cfg, check_labels=False)(z, y), OSTCLoss(cfg)(z, y), rtol=0, atol=0)
    y[0] = 10
    OSTCLoss(cfg, check_labels=False)(z, y)  # the caller checked (or not): no error, no device sync
    with pytest.raises(ValueError, match="labels must be in"):
        OSTCLoss(cfg)(z, y)
    with pytest.raises(ValueError, match=r"logits must have shape \(batch, num_classes\)"):
        OSTCLoss(cfg, check_labels=False)(z[0], y)  # shapes are still checked


def test_triton_kernel_flag_is_validated_and_cpu_logits_take_the_torch_objective(monkeypatch):
    with pytest.raises(ValueError, match="use_triton_kernel must be true or false, got 'yes'"):
        OSTCConfig(use_triton_kernel="yes")
    z, y = batch(k=10)
    flagged = make_cfg("lsr_os_tc")
    flagged.use_triton_kernel = True  # set after construction: this test must not depend on triton being installed
    torch.testing.assert_close(OSTCLoss(flagged)(z, y), OSTCLoss(make_cfg("lsr_os_tc"))(z, y), rtol=0, atol=0)
    monkeypatch.setattr(fused_loss, "triton_available", lambda: False)
    with pytest.raises(ValueError, match="use_triton_kernel=True needs the triton package"):
        OSTCConfig(use_triton_kernel=True)


@pytest.mark.parametrize("tau, confidence", [(2.0, 0.9), (8.0, 1 - 9.0**-7 / (1 + 9.0**-7))])
def test_teacher_correction_term_is_zero_at_the_logit_gap_that_sets_the_confidence(tau, confidence):
    # docs/RESULTS.md (FSDD): KL(q ‖ softmax(z/τ)) vanishes when z_c − z_k = τ·ln(a(K−1)/(1−a)) for every k ≠ c,
    # which for K = 10, a = 0.5 is τ·ln 9 and puts softmax(z)_c at 1 / (1 + 9·9^−τ): 0.90 at τ 2, ≈ 1 at τ 8.
    num_classes, a = 10, 0.5
    gap = tau * math.log(a * (num_classes - 1) / (1 - a))
    labels = torch.tensor([3])
    loss = OSTCLoss(OSTCConfig(method="lsr_os_tc", alpha=0.3, temperature=tau, correct_prob=a))

    def logits(g: float) -> torch.Tensor:  # the true class g above every other class
        return F.one_hot(labels, num_classes).to(torch.float64) * g

    def kl_at(g: float) -> float:
        return float(loss.components(logits(g), labels)["kl"])

    assert kl_at(gap) == pytest.approx(0.0, abs=1e-12)
    assert kl_at(gap - 0.1) > 1e-6 and kl_at(gap + 0.1) > 1e-6
    assert float(torch.softmax(logits(gap), 1)[0, 3]) == pytest.approx(confidence, rel=1e-9)
