"""Soft targets (issue 27): every method takes (B, K) probability rows — mixup / CutMix targets from timm, smoothed
targets, user soft labels — against a literal per-sample float64 reference (an explicit loop over the batch and over
the classes of the mixture), the hard-label path for one-hot rows, the λ-mix identity of the gradient, and clear
errors for rows that are not probabilities. Then OSTCTrainer with soft labels and with mixup, and the job end to end
from a recipe with mixup on."""

import copy
import math
import types

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from lsr_hf import OSTCConfig, OSTCLoss, OSTCTrainer
from lsr_hf.data.config import DataConfig
from lsr_hf.data.mixup import build_mixup
from lsr_hf.losses import METHODS, TFKD_CORRECT_PROB, _SoftTwoValuedObjective
from lsr_hf.trainer import LabelCheckingCollator

TWO_VALUED = ("lsr", "tfkd", "lsr_os", "lsr_os_tc")


def make_cfg(method, **kw):
    defaults = dict(alpha=0.6, temperature=3.0, correct_prob=0.4, teacher_temperature=5.0, multiplier=2.0)
    defaults.update(kw)
    return OSTCConfig(method=method, **defaults)


def soft_batch(b=10, k=7, scale=3.0, seed=0, concentration=0.5):
    """float64 logits and Dirichlet soft targets (some entries near 0)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, k, generator=g, dtype=torch.float64) * scale
    y = torch.distributions.Dirichlet(torch.full((k,), concentration, dtype=torch.float64)).sample((b,))
    return z, y / y.sum(1, keepdim=True)


def class_teacher(cfg, c, k):
    """DESIGN §1's virtual teacher for class c, as a list of K floats (built from the table, not from the code)."""
    if cfg.method in ("lsr", "lsr_os"):
        return [1.0 / k] * k
    if cfg.method == "lsr_os_tc":
        a = cfg.correct_prob
        return [a if j == c else (1 - a) / (k - 1) for j in range(k)]
    if cfg.method == "tfkd":
        p_d = [TFKD_CORRECT_PROB if j == c else (1 - TFKD_CORRECT_PROB) / (k - 1) for j in range(k)]
        e = [math.exp(v / cfg.teacher_temperature) for v in p_d]
        return [v / sum(e) for v in e]
    raise AssertionError(cfg.method)


def literal_reference(z, y, cfg, teacher_logits=None):
    """Mean over the batch of (1−α)·(−Σ_k y_k log p_k) + α·w·Σ_k q_k (log q_k − log p_τ,k), one sample at a time, with
    the teacher of a soft label the mixture Σ_c y_c·q^{(c)} of the per-class teachers (a loop over c), float64.
    Differentiable in z (autograd gives the reference gradient)."""
    k = z.shape[1]
    tau = {"lsr": 1.0, "tfkd": 1.0, "ce": 1.0}.get(cfg.method, cfg.temperature)
    w = {"lsr": 1.0, "tfkd": cfg.multiplier / k, "ce": 0.0}.get(cfg.method, cfg.temperature**2)
    alpha = 0.0 if cfg.method == "ce" else cfg.alpha
    total = 0.0
    for i in range(z.shape[0]):
        log_p = torch.log_softmax(z[i], 0)
        ce = -sum(y[i, j] * log_p[j] for j in range(k))
        if cfg.method == "ce":
            total = total + ce
            continue
        if cfg.method == "kd":
            q = torch.softmax(teacher_logits[i].double() / tau, 0)
        else:
            q = torch.zeros(k, dtype=torch.float64)
            for c in range(k):
                q = q + y[i, c] * torch.tensor(class_teacher(cfg, c, k), dtype=torch.float64)
        log_p_tau = torch.log_softmax(z[i] / tau, 0)
        kl = sum(q[j] * (torch.log(q[j]) - log_p_tau[j]) for j in range(k) if q[j] > 0)
        total = total + (1 - alpha) * ce + alpha * w * kl
    return total / z.shape[0]


def loss_and_grad(loss_fn, z, y, **kw):
    z = z.clone().requires_grad_(True)
    loss = loss_fn(z, y, **kw)
    loss.backward()
    return loss.detach(), z.grad


# ----------------------------------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("method", METHODS)
def test_every_method_matches_the_literal_per_sample_reference(method):
    z, y = soft_batch()
    t = torch.randn_like(z) * 2 if method == "kd" else None
    cfg = make_cfg(method)
    loss, grad = loss_and_grad(OSTCLoss(cfg), z, y, teacher_logits=t)
    z_ref = z.clone().requires_grad_(True)
    ref = literal_reference(z_ref, y, cfg, t)
    ref.backward()
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, z_ref.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", TWO_VALUED)
def test_analytic_backward_is_the_documented_formula(method):
    """∂L/∂z = [(1−α)(p − y) + α·w/τ·(p_τ − q(y))] / B, with q(y) = b + (a − b)·y."""
    z, y = soft_batch(k=9, seed=3)
    cfg = make_cfg(method)
    _, grad = loss_and_grad(OSTCLoss(cfg), z, y)
    k, tau = 9, cfg.student_temperature
    q = torch.stack([torch.tensor(class_teacher(cfg, c, k), dtype=torch.float64) for c in range(k)])  # (K, K)
    expected = (1 - cfg.alpha) * (F.softmax(z, 1) - y) + cfg.alpha * cfg.kl_weight(k) / tau * (
        F.softmax(z / tau, 1) - y @ q
    )
    torch.testing.assert_close(grad, expected / len(z), rtol=1e-12, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(
    z=arrays(np.float64, (5, 6), elements=st.floats(-30, 30, allow_nan=False)),
    weights=arrays(np.float64, (5, 6), elements=st.floats(0, 10, allow_nan=False)),
    method=st.sampled_from(TWO_VALUED + ("ce",)),
    alpha=st.floats(0, 1),
    tau=st.floats(0.5, 20),
    a=st.floats(1 / 6, 0.99),
)
def test_random_soft_targets_match_the_reference(z, weights, method, alpha, tau, a):
    weights[:, 0] += 1e-3  # no all-zero row
    y = torch.from_numpy(weights / weights.sum(1, keepdims=True))
    z = torch.from_numpy(z)
    cfg = make_cfg(method, alpha=alpha, temperature=tau, correct_prob=a)
    loss, grad = loss_and_grad(OSTCLoss(cfg), z, y)
    z_ref = z.clone().requires_grad_(True)
    ref = literal_reference(z_ref, y, cfg)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(grad, z_ref.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method", METHODS)
def test_one_hot_soft_labels_give_the_hard_label_result(method, dtype):
    z, _ = soft_batch(b=12, k=10, seed=5)
    z = z.to(dtype)
    labels = torch.randint(0, 10, (12,), generator=torch.Generator().manual_seed(1))
    t = torch.randn_like(z) if method == "kd" else None
    loss_fn = OSTCLoss(make_cfg(method))
    hard, hard_grad = loss_and_grad(loss_fn, z, labels, teacher_logits=t)
    soft, soft_grad = loss_and_grad(loss_fn, z, F.one_hot(labels, 10).to(dtype), teacher_logits=t)
    tol = dict(rtol=1e-13, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(soft, hard, **tol)
    torch.testing.assert_close(soft_grad, hard_grad, **tol)
    hard_parts = loss_fn.components(z, labels, teacher_logits=t)
    soft_parts = loss_fn.components(z, F.one_hot(labels, 10).to(dtype), teacher_logits=t)
    for name in ("ce", "kl"):
        torch.testing.assert_close(soft_parts[name], hard_parts[name], **tol)


@pytest.mark.parametrize("method", METHODS)
def test_mixup_gradient_is_the_lambda_mix_of_the_two_hard_gradients(method):
    """y = λ·e_i + (1−λ)·e_j: the gradient is affine in y, so it is λ·∇(label i) + (1−λ)·∇(label j) exactly; the
    CE part is the λ-mix of the two CEs; the loss differs from the λ-mix of the two losses by a constant in z."""
    z, _ = soft_batch(b=8, k=6, seed=7)
    g = torch.Generator().manual_seed(2)
    i, j = torch.randint(0, 6, (8,), generator=g), torch.randint(0, 6, (8,), generator=g)
    lam = 0.3
    y = lam * F.one_hot(i, 6).double() + (1 - lam) * F.one_hot(j, 6).double()
    t = torch.randn_like(z) if method == "kd" else None
    loss_fn = OSTCLoss(make_cfg(method))
    _, grad = loss_and_grad(loss_fn, z, y, teacher_logits=t)
    _, grad_i = loss_and_grad(loss_fn, z, i, teacher_logits=t)
    _, grad_j = loss_and_grad(loss_fn, z, j, teacher_logits=t)
    torch.testing.assert_close(grad, lam * grad_i + (1 - lam) * grad_j, rtol=1e-12, atol=1e-14)
    ce = loss_fn.components(z, y, teacher_logits=t)["ce"]
    expected_ce = lam * F.cross_entropy(z, i) + (1 - lam) * F.cross_entropy(z, j)
    torch.testing.assert_close(ce, expected_ce, rtol=1e-12, atol=1e-14)
    gap = [
        (loss_fn(w, y, teacher_logits=t) - lam * loss_fn(w, i, teacher_logits=t)
         - (1 - lam) * loss_fn(w, j, teacher_logits=t)).item()
        for w in (z, z * 0.5 + 1.0)
    ]  # fmt: skip
    assert gap[0] == pytest.approx(gap[1], abs=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0])
def test_lsr_on_soft_targets_equals_torch_label_smoothing_minus_alpha_log_k(alpha):
    z, y = soft_batch(k=10, seed=9)
    ours, grad = loss_and_grad(OSTCLoss(method="lsr", alpha=alpha), z, y)
    z_ref = z.clone().requires_grad_(True)
    ref = F.cross_entropy(z_ref, y, label_smoothing=alpha) - alpha * math.log(10)
    ref.backward()
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, z_ref.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["lsr_os", "lsr_os_tc", "tfkd"])
def test_kl_is_zero_exactly_when_the_student_matches_the_mixed_teacher(method):
    cfg = make_cfg(method)
    _, y = soft_batch(b=4, k=5, seed=11)
    q = y @ torch.stack([torch.tensor(class_teacher(cfg, c, 5), dtype=torch.float64) for c in range(5)])
    z = q.log() * cfg.student_temperature  # softmax(z/τ) = q(y)
    assert abs(OSTCLoss(cfg).components(z, y)["kl"].item()) < 1e-12
    assert OSTCLoss(cfg).components(z + torch.randn_like(z), y)["kl"].item() > 1e-4


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("cutmix", [False, True])
def test_timm_mixup_targets_are_accepted_and_match_the_reference(smoothing, cutmix):
    from timm.data import Mixup
    from timm.data.mixup import mixup_target

    np.random.seed(0)
    k = 10
    mixup = Mixup(mixup_alpha=0.0 if cutmix else 1.0, cutmix_alpha=1.0 if cutmix else 0.0, label_smoothing=smoothing,
                  num_classes=k)  # fmt: skip
    x = torch.randn(8, 3, 16, 16)
    labels = torch.arange(8) % k
    _, y = mixup(x, labels)
    assert y.shape == (8, k) and y.dtype == torch.float32
    cfg = make_cfg("lsr_os_tc")
    z = torch.randn(8, k, dtype=torch.float64) * 2
    loss, grad = loss_and_grad(OSTCLoss(cfg), z, y)
    z_ref = z.clone().requires_grad_(True)
    ref = literal_reference(z_ref, y.double(), cfg)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-9, atol=1e-9)  # y is float32: rows sum to 1 ± 1e-7
    torch.testing.assert_close(grad, z_ref.grad, rtol=1e-7, atol=1e-9)
    targets = mixup_target(labels, k, lam=0.7, smoothing=smoothing)
    assert torch.isfinite(OSTCLoss(cfg)(z.float(), targets))


def test_half_precision_logits_with_soft_targets_match_float32():
    z, y = soft_batch(b=16, k=20, seed=4)
    cfg = make_cfg("lsr_os_tc")
    reference = OSTCLoss(cfg)(z.float(), y.float())
    for dtype in (torch.bfloat16, torch.float16):
        zh = z.to(dtype).requires_grad_(True)
        loss = OSTCLoss(cfg)(zh, y.to(dtype))
        loss.backward()
        assert loss.dtype == torch.float32 and zh.grad.dtype == dtype and torch.isfinite(zh.grad).all()
        upcast = OSTCLoss(cfg, check_labels=False)(zh.detach().float(), y.to(dtype).float())  # bf16-rounded rows
        torch.testing.assert_close(loss, upcast, rtol=1e-6, atol=1e-6)
        assert loss.item() == pytest.approx(reference.item(), rel=0.05)


def test_huge_logits_and_tiny_teacher_temperature_stay_finite():
    z, y = soft_batch(k=100, scale=1e4)
    for cfg in (make_cfg("lsr_os_tc"), OSTCConfig(method="tfkd", alpha=0.5, teacher_temperature=1e-4)):
        loss, grad = loss_and_grad(OSTCLoss(cfg), z.float(), y.float())
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_num_items_in_batch_gives_the_sum_over_that_count():
    z, y = soft_batch(b=6)
    loss_fn = OSTCLoss(make_cfg("lsr_os_tc"))
    torch.testing.assert_close(loss_fn(z, y, num_items_in_batch=15), loss_fn(z, y) * 6 / 15, rtol=1e-13, atol=0)
    torch.testing.assert_close(
        loss_fn(z, y, num_items_in_batch=torch.tensor(15)), loss_fn(z, y) * 6 / 15, rtol=1e-13, atol=0
    )


def test_empty_soft_batch_is_zero():
    z = torch.zeros(0, 5, dtype=torch.float64, requires_grad=True)
    loss = OSTCLoss(make_cfg("lsr_os_tc"))(z, torch.zeros(0, 5, dtype=torch.float64))
    loss.backward()
    assert loss.item() == 0.0 and z.grad.shape == (0, 5)


def test_soft_targets_take_the_soft_objective_and_the_soft_kernel_on_cuda():
    """CPU logits take the torch objective whatever the flag; CUDA logits with the flag take the soft Triton kernels
    (checked against the torch objective in tests/test_fused_loss.py)."""
    cfg = make_cfg("lsr_os_tc")
    cfg.use_triton_kernel = True  # set after construction: must not depend on triton
    z, y = soft_batch()
    assert OSTCLoss(cfg)._objective(z, soft=True) is _SoftTwoValuedObjective
    torch.testing.assert_close(OSTCLoss(cfg)(z, y), OSTCLoss(make_cfg("lsr_os_tc"))(z, y), rtol=0, atol=0)
    fused_loss = pytest.importorskip("lsr_hf.fused_loss")
    if not fused_loss.triton_available():
        pytest.skip("triton is not installed")
    on_cuda = types.SimpleNamespace(is_cuda=True)
    assert OSTCLoss(cfg)._objective(on_cuda, soft=True) is fused_loss.FusedSoftTwoValuedObjective
    assert OSTCLoss(cfg)._objective(on_cuda, soft=False) is fused_loss.FusedTwoValuedObjective


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda y: y * 0.9, r"soft label rows must sum to 1 \(within 0.001\), got sums \[0.9"),
        (lambda y: y * 1.01, r"rows must sum to 1"),
        (lambda y: torch.cat((y[:, :1] + 0.5, y[:, 1:2] - 0.5, y[:, 2:]), 1), r"soft labels must be >= 0"),
        (lambda y: torch.where(torch.arange(7) == 3, float("nan"), y), r"must be finite"),
        (lambda y: y[:, :6] / y[:, :6].sum(1, keepdim=True), r"soft labels must have the logits' shape \(10, 7\)"),
        (lambda y: y[:9], r"soft labels must have the logits' shape"),
        (lambda y: (y > 0.5).long(), r"2-D labels are soft targets .* must be floating point, got dtype torch.int64"),
        (lambda y: y[:, :1, None].expand(10, 7, 2), r"labels must be class ids of shape \(batch,\) or soft targets"),
        (lambda y: y.argmax(1).double(), r"labels of shape \(batch,\) must be integer class ids .* torch.float64"),
        (lambda y: y.argmax(1) == 0, r"must be integer class ids .* torch.bool"),
    ],
    ids=["sum_0.9", "sum_1.01", "negative", "nan", "wrong_k", "wrong_batch", "int_2d", "3d", "float_1d", "bool_1d"],
)
def test_invalid_labels_are_a_clear_value_error(make, message):
    z, y = soft_batch()
    bad = make(y)
    for method in ("lsr_os_tc", "ce"):
        with pytest.raises(ValueError, match=message):
            OSTCLoss(make_cfg(method))(z, bad)


def test_unchecked_loss_still_checks_shapes_and_dtypes_but_not_values():
    z, y = soft_batch()
    loss_fn = OSTCLoss(make_cfg("lsr_os_tc"), check_labels=False)
    loss_fn(z, y * 0.9)  # values: the caller's job (the trainer checks them in the collator)
    with pytest.raises(ValueError, match="integer class ids"):
        loss_fn(z, y.argmax(1).float())
    with pytest.raises(ValueError, match="logits' shape"):
        loss_fn(z, y[:, :3])


def test_label_checking_collator_checks_soft_labels_and_refuses_ignored_ones_for_mixup():
    _, y = soft_batch(b=4)
    passthrough = LabelCheckingCollator(lambda features: {"labels": features}, num_classes=7)
    assert passthrough(y)["labels"] is y
    with pytest.raises(ValueError, match="sum to 1"):
        passthrough(y * 2)
    ids = torch.tensor([1, -100, 2])
    assert passthrough(ids)["labels"] is ids
    with pytest.raises(ValueError, match=r"labels must be in \[0, 7\) with mixup: -100"):
        LabelCheckingCollator(lambda f: {"labels": f}, num_classes=7, allow_ignored=False)(ids)


# ------------------------------------------------------------------------------------------------- the trainer

NUM_LABELS = 3
OSTC = OSTCConfig(method="lsr_os_tc", alpha=0.5, temperature=2.0, correct_prob=0.5)


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=NUM_LABELS, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(cfg)


def tiny_vit():
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    cfg = TimmWrapperConfig(
        architecture="vit_tiny_patch16_224",
        model_args=dict(img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2),
        num_labels=NUM_LABELS,
    )
    return TimmWrapperForImageClassification(cfg)


class Toy(torch.utils.data.Dataset):
    """Learnable toy data: text (the first token tells the class) or images (the red level does); ``soft`` gives
    the labels as one-hot float rows or, with ``soft="mixed"``, as 0.8 / 0.2 mixtures."""

    def __init__(self, kind, n, soft=None):
        g = torch.Generator().manual_seed(1)
        self.ids = torch.arange(n) % NUM_LABELS
        if kind == "text":
            x = torch.randint(4, 40, (n, 8), generator=g)
            x[:, 0] = self.ids + 1
            self.inputs = [{"input_ids": row} for row in x]
        else:
            x = torch.randn(n, 3, 8, 8, generator=g) * 0.3
            x[:, 0] += self.ids[:, None, None].float() - 1
            self.inputs = [{"pixel_values": row} for row in x]
        self.labels = self.ids
        if soft is not None:
            one_hot = F.one_hot(self.ids, NUM_LABELS).float()
            self.labels = one_hot if soft == "one_hot" else 0.8 * one_hot + 0.2 * one_hot.roll(1, 1)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, i):
        return {**self.inputs[i], "labels": self.labels[i]}


def training_args(tmp_path, **kw):
    from transformers import TrainingArguments

    defaults = dict(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True,
        logging_steps=1, dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    defaults.update(kw)
    return TrainingArguments(**defaults)


def one_step(model, tmp_path, batch_size, accumulation, data, **trainer_kw):
    model = copy.deepcopy(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = OSTCTrainer(
        model=model,
        args=training_args(
            tmp_path / f"b{batch_size}", per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation, max_steps=1, optim="sgd", learning_rate=0.5,
            lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0,
        ),  # fmt: skip
        ostc=OSTC,
        train_dataset=data,
        **trainer_kw,
    )
    trainer.train()
    return {k: model.state_dict()[k] - before[k] for k in before if before[k].is_floating_point()}


def distance(a, b):
    return float(sum((a[k] - b[k]).norm() ** 2 for k in a).sqrt())


def test_soft_labels_train_and_count_rows_not_entries_under_accumulation(tmp_path):
    """BERT is in Trainer's num_items_in_batch regime, where Trainer alone would count a (B, K) batch as B·K items:
    one-hot soft labels give the hard-label update, and batch 8 × 1 equals batch 4 × 2 for mixed soft labels."""
    torch.manual_seed(0)
    model = tiny_bert()
    hard = one_step(model, tmp_path / "hard", 4, 2, Toy("text", 8))
    one_hot = one_step(model, tmp_path / "one_hot", 4, 2, Toy("text", 8, soft="one_hot"))
    moved = distance(hard, {k: torch.zeros_like(v) for k, v in hard.items()})
    assert moved > 1e-3
    assert distance(hard, one_hot) < 1e-5 * moved
    full = one_step(model, tmp_path / "full", 8, 1, Toy("text", 8, soft="mixed"))
    split = one_step(model, tmp_path / "split", 4, 2, Toy("text", 8, soft="mixed"))
    assert distance(full, split) < 1e-4 * moved


class Recording:
    """Wraps a mixup callable and records the batch sizes it was called with."""

    def __init__(self, mixup):
        self.mixup, self.calls = mixup, []
        self.num_classes = mixup.num_classes
        self.cutmix_alpha = mixup.cutmix_alpha

    def __call__(self, x, target):
        self.calls.append(len(x))
        return self.mixup(x, target)


def test_mixup_applies_to_training_batches_only(tmp_path):
    torch.manual_seed(0)
    np.random.seed(0)
    mixup = Recording(build_mixup(DataConfig(mixup_alpha=1.0, cutmix_alpha=1.0), NUM_LABELS))
    trainer = OSTCTrainer(
        model=tiny_vit(),
        args=training_args(tmp_path, per_device_train_batch_size=4, max_steps=6, learning_rate=1e-2),
        ostc=OSTC,
        train_dataset=Toy("image", 10),  # 10 = 4 + 4 + 2: all even
        mixup=mixup,
    )
    trainer.train()
    assert mixup.calls == [4, 4, 2] * 2
    logs = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logs) == 6 and all(np.isfinite(r["loss"]) and r["ce"] > 0 for r in logs)
    metrics = trainer.evaluate(Toy("image", 7))
    assert mixup.calls == [4, 4, 2] * 2  # evaluation is not mixed
    assert {"eval_loss", "eval_ce", "eval_kl"} <= set(metrics)


def test_an_odd_batch_mixes_all_but_its_last_sample(tmp_path):
    np.random.seed(1)
    mixup = Recording(build_mixup(DataConfig(mixup_alpha=1.0), NUM_LABELS))
    trainer = OSTCTrainer(model=tiny_vit(), args=training_args(tmp_path), ostc=OSTC, mixup=mixup)
    x = torch.randn(5, 3, 8, 8)
    labels = torch.tensor([0, 1, 2, 0, 1])
    inputs, y = trainer.mix({"pixel_values": x.clone()}, labels)
    assert mixup.calls == [4]
    assert y.shape == (5, NUM_LABELS) and torch.allclose(y.sum(1), torch.ones(5))
    assert torch.equal(y[4], F.one_hot(labels[4], NUM_LABELS).float())
    assert torch.equal(inputs["pixel_values"][4], x[4])
    assert not torch.equal(inputs["pixel_values"][:4], x[:4])
    _, y_one = trainer.mix({"pixel_values": x[:1].clone()}, labels[:1])
    assert torch.equal(y_one, F.one_hot(labels[:1], NUM_LABELS).float())


def test_mixup_refuses_integer_inputs_cutmix_on_non_images_and_ignored_labels(tmp_path):
    trainer = OSTCTrainer(
        model=tiny_bert(), args=training_args(tmp_path), ostc=OSTC, mixup=build_mixup(DataConfig(mixup_alpha=1.0), 3)
    )
    with pytest.raises(ValueError, match="mixup mixes the model's main input 'input_ids'"):
        trainer.mix({"input_ids": torch.ones(4, 8, dtype=torch.long)}, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"-100 \(ignored\) cannot be mixed"):
        trainer.data_collator([{"input_ids": torch.ones(8, dtype=torch.long), "labels": torch.tensor(-100)}] * 2)
    trainer = OSTCTrainer(
        model=tiny_vit(), args=training_args(tmp_path), ostc=OSTC, mixup=build_mixup(DataConfig(cutmix_alpha=1.0), 3)
    )
    with pytest.raises(ValueError, match="CutMix cuts boxes out of images"):
        trainer.mix({"pixel_values": torch.randn(4, 100)}, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="mixup must be a callable"):
        OSTCTrainer(model=tiny_vit(), args=training_args(tmp_path), ostc=OSTC, mixup="yes")


# ---------------------------------------------------------------------------------------- recipes and the job


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("mixup_alpha", -0.5, "mixup_alpha must be a number >= 0"),
        ("cutmix_alpha", float("inf"), "cutmix_alpha must be a number >= 0"),
        ("mixup_prob", 1.5, r"mixup_prob must be in \[0, 1\]"),
        ("mixup_switch_prob", -0.1, r"mixup_switch_prob must be in \[0, 1\]"),
        ("mixup_alpha", True, "mixup_alpha must be a number"),
    ],
)
def test_mixup_fields_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**{field: value})


def test_mixup_is_off_by_default_and_cutmix_is_refused_for_audio():
    assert not DataConfig().mixup_enabled and build_mixup(DataConfig(), 10) is None
    assert not DataConfig(mixup_alpha=1.0, mixup_prob=0.0).mixup_enabled
    mixup = build_mixup(DataConfig(mixup_alpha=0.4, cutmix_alpha=1.0, mixup_prob=0.8, mixup_switch_prob=0.3), 10)
    assert (mixup.mixup_alpha, mixup.cutmix_alpha, mixup.mix_prob, mixup.switch_prob) == (0.4, 1.0, 0.8, 0.3)
    assert (mixup.label_smoothing, mixup.num_classes, mixup.mode) == (0.0, 10, "batch")
    with pytest.raises(ValueError, match="cutmix_alpha must be 0 for the audio dataset 'gtzan'"):
        DataConfig(name="gtzan", cutmix_alpha=1.0)
    with pytest.raises(ValueError, match="data.cutmix_alpha must be 0 for audio data"):
        build_mixup(DataConfig(cutmix_alpha=1.0), 10, modality="audio")


def test_the_cifar10_mixup_recipe_loads():
    from lsr_hf.recipe import load_recipe

    from test_docs import REPO

    recipe = load_recipe(REPO / "recipes" / "cifar10_ostc_mixup.yaml")
    assert recipe.data.mixup_enabled and recipe.data.mixup_alpha == 1.0 and recipe.loss.method == "lsr_os_tc"
    assert recipe.training["per_device_train_batch_size"] % 2 == 0


def test_job_trains_with_mixup_from_a_recipe(tmp_path):
    """A few steps of the job's trainer (lsr_hf.job.train.build_trainer) from a recipe with mixup and CutMix on, on the
    tiny cifar10 parquet: training batches are mixed on the device after augmentation, evaluation is not."""
    from data_fixtures import write_image_parquet
    from lsr_hf.data import prepare_data
    from lsr_hf.recipe import load_recipe
    from lsr_hf.job.train import build_trainer

    root = write_image_parquet(tmp_path / "data", "cifar10", n_per_class=4)
    recipe = {
        "data": {"name": "cifar10", "path": str(root), "validation_fraction": 0.25, "mixup_alpha": 0.4,
                 "cutmix_alpha": 1.0},
        "model": {"name": "resnet10t"},
        "loss": {"method": "lsr_os_tc", "alpha": 0.5, "temperature": 2.0, "correct_prob": 0.3},
        "training": {"output_dir": str(tmp_path / "out"), "max_steps": 3, "per_device_train_batch_size": 8,
                     "per_device_eval_batch_size": 16, "learning_rate": 0.05, "optim": "sgd", "report_to": "none",
                     "use_cpu": True, "seed": 0, "disable_tqdm": True, "dataloader_num_workers": 0,
                     "logging_steps": 1, "save_strategy": "no", "eval_strategy": "no"},
    }  # fmt: skip
    path = tmp_path / "mixup.yaml"
    path.write_text(yaml.safe_dump(recipe))
    recipe = load_recipe(path)
    data = prepare_data(recipe.data)
    trainer = build_trainer(recipe, data)
    assert trainer.mixup is not None and trainer.mixup.num_classes == 10
    mixed = []
    mix = trainer.mix
    trainer.mix = lambda inputs, labels: mixed.append(inputs["pixel_values"].dtype) or mix(inputs, labels)
    result = trainer.train()
    assert trainer.state.global_step == 3 and np.isfinite(result.training_loss)
    assert mixed == [torch.float32] * 3  # after the uint8 batch was augmented and normalised on the device
    metrics = trainer.evaluate()
    assert len(mixed) == 3 and np.isfinite(metrics["eval_loss"]) and 0.0 <= metrics["eval_accuracy"] <= 1.0
