"""The LSR-OS-TC objective and its baselines (DESIGN.md §1).

Every method is one formula::

    L = (1 - α) · CE(y, p)  +  α · w · KL(q ‖ p_τ)        p = softmax(z),  p_τ = softmax(z / τ)

==============  =====================================================  ========  ===============
method          virtual teacher q                                      τ         w
==============  =====================================================  ========  ===============
``ce``          (none; α is taken as 0)                                 —         —
``lsr``         uniform 1/K                                            1         1
``tfkd``        softmax(p_d / T_t), p_d(c)=0.99, p_d(k≠c)=0.01/(K-1)   1         multiplier / K
``lsr_os``      uniform 1/K                                            τ         τ²
``lsr_os_tc``   q(c)=a, q(k≠c)=(1-a)/(K-1), 1/K ≤ a < 1                τ         τ²
``kd``          softmax(t / τ) from real teacher logits t              τ         τ²
==============  =====================================================  ========  ===============

The hand-made teachers are two-valued (q(c)=a, q(k≠c)=b=(1-a)/(K-1)), so with S = Σ_k z_k

    KL(q ‖ p_τ) = [a log a + (1-a) log b] + lse(z/τ) - (a·z_c + b·(S - z_c)) / τ

and the loss needs only ``lse(z)``, ``lse(z/τ)``, ``z_c`` and ``S``: no B×K teacher tensor, no loop over the batch.
Its gradient is ∂L/∂z = (1-α)(p - y) + α·w/τ·(p_τ - q). Everything is computed in float32 (bf16/fp16 logits are
upcast; float64 stays float64) with log-sum-exp, so the loss stays finite for |z| up to 1e4.

**Soft targets** (mixup, CutMix, timm's ``mixup_target`` with or without smoothing, any user soft label): labels may
be a (B, K) float tensor y whose rows are probability vectors (y ≥ 0, Σ_k y_k = 1) instead of (B,) class ids. Every
hand-made teacher is affine in the one-hot label, q^{(c)} = b + (a − b)·e_c, so the teacher of a soft label is the
y-mixture of the per-class teachers, q(y) = Σ_c y_c·q^{(c)} = b + (a − b)·y (uniform for ``lsr``/``lsr_os``; the
code uses b·Σ_k y_k + (a − b)·y: the same for rows summing to 1, the literal mixture for rows off by rounding), and

    CE(y, p)     = −Σ_k y_k log p_k
    KL(q(y)‖p_τ) = Σ_k q_k log q_k − b·Σ_k log p_τ,k − (a − b)·Σ_k y_k log p_τ,k
    ∂L/∂z        = (1 − α)·((Σ_k y_k)·p − y) + α·w/τ·((Σ_k q_k)·p_τ − q(y))     (Σ y = Σ q = 1: the hard formula)

still O(B·K), no loop over the batch. The gradient is affine in y, so for a mixup target y = λ·e_i + (1−λ)·e_j it is
exactly λ·(gradient for label i) + (1−λ)·(gradient for label j); the loss differs from that λ-mix of the two hard
losses only by a constant in z (the teacher entropy term), which keeps KL ≥ 0 with 0 exactly at p_τ = q(y).
``ce`` and ``kd`` take the same CE; ``kd``'s teacher comes from its logits and does not depend on y.
A one-hot y gives the hard-label loss and gradient (up to rounding).

This module imports nothing from the rest of the package, except ``lsr_hf.fused_loss`` (the optional Triton
kernels) when ``OSTCConfig.use_triton_kernel`` asks for it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TEACHERS = ("none", "uniform", "correct_prob", "tfkd", "logits")  # "logits": a real teacher model's
TWO_VALUED_TEACHERS = ("uniform", "correct_prob", "tfkd")  # hand-made: q(c) = a, q(k≠c) = b (closed form)
KL_WEIGHTS = ("one", "tau_squared", "multiplier_over_k")
PARAM_SYMBOLS = {
    "alpha": "α", "temperature": "τ", "correct_prob": "a", "teacher_temperature": "T_t", "multiplier": "mult"
}  # fmt: skip  (every OSTCConfig field a method may read, in report order)


@dataclass(frozen=True)
class MethodSpec:
    """One training objective, as the rest of the package knows it: the model card's title, the sweep report's
    parameters and order, the bench's list all come from :data:`METHOD_SPECS`.

    Attributes:
        title: how cards and reports name it.
        teacher: the virtual teacher q (``TEACHERS``): ``"none"`` (α is taken as 0), ``"uniform"`` (1/K),
            ``"correct_prob"`` (q(c) = a, q(k≠c) = (1−a)/(K−1), a = ``correct_prob``), ``"tfkd"`` (softmax of
            Tf-KD_reg's p_d at T_t) or ``"logits"`` (softmax(t/τ) of a real teacher model).
        tempered_student: p_τ = softmax(z/τ) with τ = ``temperature`` (else τ = 1).
        kl_weight: w of the KL term (``KL_WEIGHTS``): 1, τ², or ``multiplier`` / K.
        params: the ``OSTCConfig`` fields it reads (the others are ignored by it).
    """

    title: str
    teacher: str
    tempered_student: bool
    kl_weight: str
    params: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.teacher not in TEACHERS or self.kl_weight not in KL_WEIGHTS:
            raise ValueError(f"unknown teacher {self.teacher!r} or kl_weight {self.kl_weight!r}")
        if self.tempered_student != ("temperature" in self.params):
            raise ValueError("a method reads temperature exactly when its student is tempered")

    @property
    def two_valued(self) -> bool:
        """The teacher is hand-made and two-valued: the closed-form objective (and its fused kernel) applies."""
        return self.teacher in TWO_VALUED_TEACHERS


METHOD_SPECS: dict[str, MethodSpec] = {
    "ce": MethodSpec("cross-entropy", "none", False, "one", ()),
    "lsr": MethodSpec("label smoothing (LSR)", "uniform", False, "one", ("alpha",)),
    "tfkd": MethodSpec(
        "Tf-KD_reg (teacher-free KD, Yuan et al. 2020)", "tfkd", False, "multiplier_over_k",
        ("alpha", "teacher_temperature", "multiplier"),
    ),
    "lsr_os": MethodSpec(
        "LSR-OS (label smoothing with output smoothing)", "uniform", True, "tau_squared", ("alpha", "temperature")
    ),
    "lsr_os_tc": MethodSpec(
        "LSR-OS-TC (output smoothing + teacher correction, Wang et al. 2021)", "correct_prob", True, "tau_squared",
        ("alpha", "temperature", "correct_prob"),
    ),
    "kd": MethodSpec("knowledge distillation from a teacher", "logits", True, "tau_squared", ("alpha", "temperature")),
}  # fmt: skip
METHODS = tuple(METHOD_SPECS)
SMOOTHING_METHODS = tuple(name for name, spec in METHOD_SPECS.items() if spec.two_valued)
TFKD_CORRECT_PROB = 0.99  # p_d(c) of Tf-KD_reg's hand-made teacher before its temperature softmax (Yuan et al.)
IGNORE_INDEX = -100  # labels equal to this are skipped, as in F.cross_entropy
SOFT_LABEL_TOLERANCE = 1e-3  # |Σ_k y_k − 1| allowed for a soft-target row (half-precision or summed-up targets)


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass
class OSTCConfig:
    """Hyperparameters of the objective. Validated on construction; invalid values raise ``ValueError``
    naming the field, the value and the allowed range.

    Defaults (α = 0.3, τ = 2, a = 0.5) come from the real CIFAR-10 study, chosen on validation only: of the
    (α, τ, a) settings of ``lsr_os_tc`` run on three backbones, the highest mean validation-accuracy gain over
    ``ce`` with calibration close to it; ``recipes/cifar10_ostc_calibrated.yaml`` favours calibration instead, and
    the GTZAN recipes take τ = 4, a = 0.8. The numbers behind each choice: docs/RESULTS.md."""

    method: str = field(
        default="lsr_os_tc", metadata={"help": f"Training objective, one of {', '.join(METHODS)}."}
    )
    alpha: float = field(
        default=0.3, metadata={"help": "α in [0, 1]: weight of the distillation term; (1-α) weights the CE."}
    )
    temperature: float = field(
        default=2.0, metadata={"help": "τ > 0: the student's softmax temperature in the KL term (lsr_os, lsr_os_tc, kd)."}
    )
    correct_prob: float = field(
        default=0.5, metadata={"help": "a in [1/K, 1): the TC virtual teacher's probability of the true class (lsr_os_tc)."}
    )
    teacher_temperature: float = field(
        default=20.0, metadata={"help": "T_t > 0: temperature of Tf-KD_reg's hand-made teacher (tfkd)."}
    )
    multiplier: float = field(
        default=1.0, metadata={"help": "> 0: Tf-KD_reg's per-model multiplier of its KL term (tfkd)."}
    )
    use_triton_kernel: bool = field(
        default=False,
        metadata={
            "help": "Run lsr, tfkd, lsr_os and lsr_os_tc as one fused Triton kernel forward and one backward on CUDA "
            "(lsr_hf.fused_loss; same values, checked against float64 under Triton's interpreter). Needs triton; "
            "CPU tensors always take the torch version. Class ids and soft (B, K) targets both have a kernel. Off by "
            "default until it is measured on a GPU."
        },
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        # messages show the value as given (``got -1``), the stored value is a float
        alpha = self.alpha
        self.alpha = _check_number("alpha", alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        for name in ("temperature", "teacher_temperature", "multiplier"):
            given = getattr(self, name)
            value = _check_number(name, given)
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {given!r}")
            setattr(self, name, value)
        given = self.correct_prob
        self.correct_prob = _check_number("correct_prob", given)
        if not 0.0 < self.correct_prob < 1.0:
            raise ValueError(f"correct_prob must be in [1/K, 1) (K = number of classes), got {given!r}")
        if not isinstance(self.use_triton_kernel, bool):
            raise ValueError(f"use_triton_kernel must be true or false, got {self.use_triton_kernel!r}")
        if self.use_triton_kernel:
            from lsr_hf.fused_loss import triton_available  # imports triton: only when asked for

            if not triton_available():
                raise ValueError("use_triton_kernel=True needs the triton package, which cannot be imported")

    def check_num_classes(self, num_classes: int) -> None:
        """Checks what depends on the number of classes K (raises ``ValueError``)."""
        if num_classes < 2:
            raise ValueError(f"the number of classes must be >= 2, got {num_classes}")
        if self.spec.teacher == "correct_prob" and self.correct_prob < 1.0 / num_classes - 1e-12:
            raise ValueError(
                f"correct_prob must be in [1/K, 1) = [{1.0 / num_classes:.6g}, 1) for K = {num_classes} classes, "
                f"got {self.correct_prob!r}"
            )

    @property
    def spec(self) -> MethodSpec:
        """What the method is (``METHOD_SPECS[method]``)."""
        return METHOD_SPECS[self.method]

    @property
    def effective_alpha(self) -> float:
        return 0.0 if self.spec.teacher == "none" else self.alpha

    @property
    def student_temperature(self) -> float:
        """τ of p_τ: the configured temperature for a tempered student (lsr_os, lsr_os_tc, kd), else 1."""
        return self.temperature if self.spec.tempered_student else 1.0

    def kl_weight(self, num_classes: int) -> float:
        """w of the KL term: 1, τ² or multiplier / K (``MethodSpec.kl_weight``)."""
        rule = self.spec.kl_weight
        if rule == "multiplier_over_k":
            return self.multiplier / num_classes
        if rule == "tau_squared":
            return self.temperature**2
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def two_valued_teacher(config: OSTCConfig, num_classes: int) -> tuple[float, float]:
    """Log-probabilities (log a, log b) of a hand-made teacher: q(c) = a, q(k≠c) = b = (1-a)/(K-1).

    Computed in float64 in log space so that a b that underflows (Tf-KD with a tiny T_t) gives 0·log b = 0.
    """
    k = num_classes
    teacher = config.spec.teacher
    if teacher == "uniform":
        return -math.log(k), -math.log(k)
    if teacher == "correct_prob":
        a = config.correct_prob
        return math.log(a), math.log1p(-a) - math.log(k - 1)
    if teacher == "tfkd":
        # softmax over K values: one equals 0.99 / T_t, K-1 equal 0.01 / ((K-1) T_t)
        hi = TFKD_CORRECT_PROB / config.teacher_temperature
        lo = (1.0 - TFKD_CORRECT_PROB) / (k - 1) / config.teacher_temperature
        log_norm = hi + math.log1p((k - 1) * math.exp(lo - hi))
        return hi - log_norm, lo - log_norm
    raise ValueError(f"method {config.method!r} has no two-valued teacher")


class _TwoValuedObjective(torch.autograd.Function):
    """The reduced objective for a two-valued teacher, ``Σ_i m_i·[(1−α)·CE_i + α·w·KL_i] / D`` (m_i = 0 for ignored
    rows, D = ``num_items_in_batch`` or Σ_i m_i), with its analytic backward

        ∂/∂z_i = m_i/D · [(1−α)·(p_i − y_i) + α·w/τ·(p_τ,i − q_i)],        q_i = b + (a − b)·y_i

    in one function, so that forward and backward are a few fused passes over the (B, K) logits instead of autograd's
    chain of small ops. The forward uses Σ_k q_k log p_τ,k = (a − b)·log p_τ,c + b·Σ_k log p_τ,k (a + (K−1)·b = 1).
    Also returns, without gradient, the sums (Σ m·CE, Σ m·KL, Σ m) for logging.
    """

    @staticmethod
    def forward(ctx, z, labels, denominator, ce_weight, kl_weight, tau, log_a, log_b):  # type: ignore[override]
        a, b = math.exp(log_a), math.exp(log_b)
        entropy_term = a * log_a + (z.shape[1] - 1) * b * log_b  # Σ_k q_k log q_k, a constant
        keep = (labels != IGNORE_INDEX).to(z.dtype)
        index = labels.clamp(0, z.shape[1] - 1)[:, None]  # ignored rows point at class 0; keep = 0 cancels them
        log_p = torch.log_softmax(z, dim=1)
        ce = log_p.gather(1, index).squeeze(1).neg_()
        if tau == 1.0:
            log_p_tau, log_p_tau_c = log_p, -ce
        else:
            log_p_tau = torch.log_softmax(z * (1.0 / tau), dim=1)
            log_p_tau_c = log_p_tau.gather(1, index).squeeze(1)
        kl = log_p_tau.sum(1).mul_(-b).add_(entropy_term).sub_(log_p_tau_c, alpha=a - b)
        sums = torch.stack((ce, kl, keep)) @ keep  # Σ m·CE, Σ m·KL, Σ m
        if denominator is None:
            denominator = sums[2].clamp(min=1.0)
        total = sums[0].mul(ce_weight).add_(sums[1], alpha=kl_weight).div_(denominator)
        ctx.save_for_backward(log_p, log_p_tau, index, keep)
        ctx.constants = (denominator, ce_weight, kl_weight / tau, a, b)
        ctx.mark_non_differentiable(sums)
        ctx.set_materialize_grads(False)
        return total, sums

    @staticmethod
    def backward(ctx, grad_total, _grad_sums):  # type: ignore[override]
        log_p, log_p_tau, index, keep = ctx.saved_tensors
        denominator, ce_weight, kl_weight_over_tau, a, b = ctx.constants
        row = (keep * (grad_total / denominator))[:, None]
        grad = log_p.exp().mul_(row * ce_weight)
        grad.addcmul_(log_p_tau.exp().sub_(b), row, value=kl_weight_over_tau)
        grad.scatter_add_(1, index, row * -(ce_weight + (a - b) * kl_weight_over_tau))
        return grad, None, None, None, None, None, None, None


class _SoftTwoValuedObjective(torch.autograd.Function):
    """``_TwoValuedObjective`` for soft targets y (B, K) (rows ≥ 0 summing to 1; every row counts, m_i = 1): the
    reduced objective ``Σ_i [(1−α)·CE_i + α·w·KL_i] / D`` (D = ``num_items_in_batch`` or B) with

        CE_i = −Σ_k y_ik log p_ik
        q_i  = Σ_c y_ic·q^{(c)} = b·Σ_k y_ik + (a − b)·y_i      (the y-mixture of the per-class teachers;
                                                                 b + (a − b)·y_i for a row summing to 1)
        KL_i = Σ_k q_ik log q_ik − Σ_k q_ik log p_τ,ik

    and its analytic backward, written for any row sum s_i = Σ_k y_ik (= Σ_k q_ik; the hard-label formula at s = 1):

        ∂/∂z_i = 1/D · [(1−α)·(s_i·p_i − y_i) + α·w/τ·(s_i·p_τ,i − q_i)]

    Same arguments and outputs as ``_TwoValuedObjective`` with ``labels`` the (B, K) targets. Torch ops, O(B·K);
    ``lsr_hf.fused_loss.FusedSoftTwoValuedObjective`` is the same as Triton kernels (``use_triton_kernel``, CUDA).
    """

    @staticmethod
    def forward(ctx, z, targets, denominator, ce_weight, kl_weight, tau, log_a, log_b):  # type: ignore[override]
        a, b = math.exp(log_a), math.exp(log_b)
        y = targets.to(z.dtype)
        log_p = torch.log_softmax(z, dim=1)
        ce = (y * log_p).sum(1).neg_()
        log_p_tau = log_p if tau == 1.0 else torch.log_softmax(z * (1.0 / tau), dim=1)
        y_sum = y.sum(1, keepdim=True)
        q = (y * (a - b)).add_(y_sum * b)
        kl = torch.xlogy(q, q).sum(1).sub_((q * log_p_tau).sum(1))  # 0·log 0 = 0 when b underflows (tfkd)
        count = torch.full_like(ce, 1.0)
        sums = torch.stack((ce.sum(), kl.sum(), count.sum()))  # Σ CE, Σ KL, B
        if denominator is None:
            denominator = sums[2].clamp(min=1.0)
        total = sums[0].mul(ce_weight).add_(sums[1], alpha=kl_weight).div_(denominator)
        ctx.save_for_backward(log_p, log_p_tau, y)
        ctx.constants = (denominator, ce_weight, kl_weight / tau, a, b)
        ctx.mark_non_differentiable(sums)
        ctx.set_materialize_grads(False)
        return total, sums

    @staticmethod
    def backward(ctx, grad_total, _grad_sums):  # type: ignore[override]
        if grad_total is None:
            return None, None, None, None, None, None, None, None
        log_p, log_p_tau, y = ctx.saved_tensors
        denominator, ce_weight, kl_weight_over_tau, a, b = ctx.constants
        scale = grad_total / denominator
        y_sum = y.sum(1, keepdim=True)  # = Σ_k q_k
        grad = log_p.exp().mul_(y_sum).sub_(y).mul_(ce_weight)  # s·p − y
        kl_part = log_p_tau.exp().sub_(b).mul_(y_sum).sub_(y, alpha=a - b)  # s·p_τ − q,  q = s·b + (a − b)·y
        grad.add_(kl_part, alpha=kl_weight_over_tau).mul_(scale)
        return grad, None, None, None, None, None, None, None


def logits_of(outputs: Any) -> torch.Tensor:
    """The logits in a model's output: a tensor itself, ``outputs.logits`` (a ``ModelOutput``), ``outputs["logits"]``
    (a mapping), or the first item of a tuple (transformers' ``return_dict=False`` order when no labels are passed).
    Anything else is a ``ValueError`` that says what was returned."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        logits = outputs.get("logits")
        if isinstance(logits, torch.Tensor):
            return logits
        raise ValueError(
            f"the model output has no 'logits' (its keys: {', '.join(map(str, outputs.keys())) or 'none'}); the loss "
            "needs the classification logits (batch, num_classes) as outputs.logits or outputs['logits']"
        )
    logits = getattr(outputs, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    raise ValueError(
        f"the model output is {type(outputs).__name__}, not logits: the loss needs the classification logits "
        "(batch, num_classes) as a tensor, outputs.logits, outputs['logits'] or the first item of a tuple"
    )


def is_soft(labels: torch.Tensor) -> bool:
    """Whether ``labels`` are soft targets (a 2-D tensor, (B, K)) rather than class ids (B,). Reads the shape only."""
    return isinstance(labels, torch.Tensor) and labels.dim() == 2


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """``ValueError`` unless ``labels`` are valid for ``num_classes`` classes K: class ids (B,) in [0, K) or
    ``IGNORE_INDEX``, or soft targets (B, K) (``check_soft_labels``).

    One reduction; for labels on an accelerator also one host sync (a clear error instead of a device-side assert).
    ``OSTCTrainer`` runs it on the CPU batch in the collator, where it costs nothing, and spares the loss the sync.
    Class ids that are not integers (floats, booleans) are a ``ValueError`` too.
    """
    check_label_dtype(labels)
    if is_soft(labels):
        check_soft_labels(labels, num_classes)
        return
    low, high = torch.stack(torch.aminmax(labels)).tolist() if labels.numel() else (0, 0)
    if low >= 0 and high < num_classes:
        return
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"labels must be in [0, {num_classes}) or {IGNORE_INDEX} (ignored), got {labels[bad][:5].tolist()}"
        )


def check_soft_labels(labels: torch.Tensor, num_classes: int, tolerance: float = SOFT_LABEL_TOLERANCE) -> None:
    """``ValueError`` unless ``labels`` is a float (B, ``num_classes``) tensor of probability rows: finite, every
    entry ≥ 0 and every row summing to 1 within ``tolerance`` (or the dtype's eps, if larger: bfloat16). The message
    names the first bad rows and values."""
    check_label_dtype(labels)
    if labels.dim() != 2 or labels.shape[1] != num_classes:
        raise ValueError(
            f"soft labels must have shape (batch, num_classes) = (batch, {num_classes}), got {tuple(labels.shape)}"
        )
    if not labels.numel():
        return
    y = labels.detach().to(torch.promote_types(labels.dtype, torch.float32))
    tolerance = max(tolerance, torch.finfo(labels.dtype).eps)  # bf16 targets: rows sum to 1 only within its eps
    row_sums = y.sum(1)
    finite = torch.isfinite(y).all(1)
    negative = (y < 0).any(1)
    off = (row_sums - 1.0).abs() > tolerance
    if not bool((~finite | negative | off).any()):
        return
    if not bool(finite.all()):
        rows = torch.nonzero(~finite).flatten()[:5].tolist()
        raise ValueError(f"soft labels must be finite probabilities, got NaN or inf in row(s) {rows}")
    if bool(negative.any()):
        rows = torch.nonzero(negative).flatten()[:5].tolist()
        raise ValueError(
            f"soft labels must be >= 0 (probabilities), got negative values in row(s) {rows} "
            f"(smallest {y.min().item():.6g})"
        )
    rows = torch.nonzero(off).flatten()[:5].tolist()
    raise ValueError(
        f"soft label rows must sum to 1 (within {tolerance:g}), got sums "
        f"{[round(v, 6) for v in row_sums[rows].tolist()]} in row(s) {rows}; normalise them "
        "(labels / labels.sum(1, keepdim=True)) or pass class ids"
    )


def check_label_dtype(labels: torch.Tensor) -> None:
    """``ValueError`` unless ``labels`` is a tensor of integer class ids (B,) or a float tensor of soft targets
    (B, K) (no sync: only its dtype and shape are read)."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a tensor of integer class ids or soft targets, got {type(labels).__name__}")
    if labels.dim() == 2:
        if not labels.dtype.is_floating_point:
            raise ValueError(
                "2-D labels are soft targets (batch, num_classes) and must be floating point, got dtype "
                f"{labels.dtype}: convert one-hot or probability rows with labels.float(), or pass class ids of "
                "shape (batch,)"
            )
        return
    if labels.dim() != 1:
        raise ValueError(
            f"labels must be class ids of shape (batch,) or soft targets of shape (batch, num_classes), got shape "
            f"{tuple(labels.shape)}"
        )
    if labels.numel() and (labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool):
        raise ValueError(
            f"labels of shape (batch,) must be integer class ids (torch.long) in [0, K) or {IGNORE_INDEX}, got dtype "
            f"{labels.dtype}: convert them with labels.long(); soft targets (mixup, CutMix, probabilities) have shape "
            "(batch, num_classes)"
        )


def _check_inputs(logits: torch.Tensor, labels: torch.Tensor, config: OSTCConfig, labels_too: bool = True) -> bool:
    """Checks shapes and dtypes (and, with ``labels_too``, the values); returns whether the labels are soft."""
    check_label_dtype(labels)
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (batch, num_classes), got {tuple(logits.shape)}")
    soft = is_soft(labels)
    if soft and labels.shape != logits.shape:
        raise ValueError(f"soft labels must have the logits' shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
    if not soft and labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    config.check_num_classes(logits.shape[1])
    if labels_too:
        check_labels(labels, logits.shape[1])
    return soft


def _ce_and_teacher_kl(
    z: torch.Tensor, labels: torch.Tensor, config: OSTCConfig, teacher_logits: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample CE and, for ``kd``, KL(softmax(t/τ) ‖ p_τ); 0 for ignored rows. Plain autograd.
    Soft targets y (B, K): CE = −Σ_k y_k log p_k (``F.cross_entropy`` with probability targets), every row counts."""
    soft = is_soft(labels)
    if soft:
        ce = F.cross_entropy(z, labels.to(z.dtype), reduction="none")
    else:
        ce = F.cross_entropy(z, labels, reduction="none", ignore_index=IGNORE_INDEX)
    if config.spec.teacher == "none":
        return ce, torch.zeros_like(ce)
    if teacher_logits is None:
        raise ValueError("method 'kd' needs teacher_logits (pass teacher_model= to OSTCTrainer)")
    if teacher_logits.shape != z.shape:
        raise ValueError(
            f"teacher_logits must have the student's shape {tuple(z.shape)}, got {tuple(teacher_logits.shape)}"
        )
    tau = config.temperature
    log_p_tau = F.log_softmax(z / tau, dim=1)
    log_q = F.log_softmax(teacher_logits.detach().to(z.dtype) / tau, dim=1)
    kl = F.kl_div(log_p_tau, log_q, reduction="none", log_target=True).sum(1)
    return ce, (kl if soft else kl * (labels != IGNORE_INDEX))


class OSTCLoss(nn.Module):
    """The objective as an ``nn.Module``: ``loss = OSTCLoss(cfg)(logits, labels)``.

    ``forward`` also takes a model output (anything with ``.logits``) and ``num_items_in_batch``, so it can be given
    to ``transformers.Trainer(compute_loss_func=OSTCLoss(cfg))``. Reduction: the mean over non-ignored rows, or, when
    ``num_items_in_batch`` is given, their sum divided by it (Trainer's gradient-accumulation convention).

    The two-valued methods run as one fused ``autograd.Function``: a few torch ops, or, with
    ``config.use_triton_kernel`` and CUDA logits, one Triton kernel forward and one backward (``lsr_hf.fused_loss``,
    the same math; class ids and soft targets each have their kernels).

    Labels are class ids (B,) in [0, K) or -100 (ignored), or soft targets (B, K) float — mixup/CutMix targets
    (``timm.data.Mixup``, ``mixup_target`` with or without smoothing) or any probability rows — for which the
    teacher is q(y) = b + (a − b)·y and the CE is −Σ_k y_k log p_k (module docstring; every row counts, there is no
    ignore index). ``check_labels=True`` checks them on every call (``ValueError``: ids out of range; soft rows
    with negative or non-finite entries, or not summing to 1 within ``SOFT_LABEL_TOLERANCE``), which on a GPU costs
    one host sync per call. Pass ``check_labels=False`` where the labels were checked before they reached the device
    (``OSTCTrainer`` checks them in its collator, see ``lsr_hf.losses.check_labels``). Shapes and dtypes are always
    checked: float labels of shape (B,) are a ``ValueError``, not a ``gather`` error.

    Used as ``Trainer(compute_loss_func=OSTCLoss(cfg))``, the loss cannot see ``TrainingArguments``: Trainer then
    silently ignores ``label_smoothing_factor`` (it applies it only in the loss this replaces), so leave it at 0 and
    put the smoothing in ``cfg`` (``OSTCTrainer`` refuses a non-zero factor). Trainer also counts the items of a
    (B, K) soft-label batch as B·K for ``num_items_in_batch``; ``OSTCTrainer`` counts B.
    """

    def __init__(
        self,
        config: OSTCConfig | None = None,
        *,
        check_labels: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("pass either an OSTCConfig or its fields as keyword arguments, not both")
        self.config = config if config is not None else OSTCConfig(**kwargs)
        self.check_labels = bool(check_labels)

    def components(
        self,
        logits: Any,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> dict[str, torch.Tensor]:
        """``total`` (the loss, reduced as in ``forward``) and the batch means of its parts ``ce`` and ``kl``
        (KL(q ‖ p_τ) before its weight α·w), over the labelled rows (all rows for soft targets), for logging.

        ``labels``: class ids (B,) or soft targets (B, K); for soft targets CE = −Σ_k y_k log p_k and, for the
        hand-made teachers, q = b + (a − b)·y (module docstring)."""
        logits = logits_of(logits)
        soft = _check_inputs(logits, labels, self.config, labels_too=self.check_labels)
        z = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16/fp16 -> float32; float64 stays
        config, num_classes = self.config, logits.shape[1]
        alpha = config.effective_alpha
        kl_weight = alpha * config.kl_weight(num_classes)
        if config.spec.two_valued:
            log_a, log_b = two_valued_teacher(config, num_classes)
            total, sums = self._objective(z, soft).apply(
                z, labels, num_items_in_batch, 1.0 - alpha, kl_weight, config.student_temperature, log_a, log_b
            )
            ce_sum, kl_sum, num_kept = sums.unbind()
        else:
            ce, kl = _ce_and_teacher_kl(z, labels, config, teacher_logits)
            num_kept = z.new_tensor(float(len(ce))) if soft else (labels != IGNORE_INDEX).sum()
            denominator = num_kept.clamp(min=1) if num_items_in_batch is None else num_items_in_batch
            total = ((1.0 - alpha) * ce + kl_weight * kl).sum() / denominator
            ce_sum, kl_sum = ce.detach().sum(), kl.detach().sum()
        ce_mean, kl_mean = (torch.stack((ce_sum, kl_sum)) / num_kept.clamp(min=1)).unbind()
        return {"total": total, "ce": ce_mean, "kl": kl_mean}

    def _objective(self, z: torch.Tensor, soft: bool = False) -> type[torch.autograd.Function]:
        """The fused Triton objective for CUDA logits when ``config.use_triton_kernel`` is set, else the torch one;
        for class ids or, with ``soft``, for (B, K) soft targets."""
        if self.config.use_triton_kernel and z.is_cuda:
            from lsr_hf import fused_loss  # imports triton, only when asked for

            return fused_loss.FusedSoftTwoValuedObjective if soft else fused_loss.FusedTwoValuedObjective
        return _SoftTwoValuedObjective if soft else _TwoValuedObjective

    def forward(
        self,
        logits: Any,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        return self.components(logits, labels, teacher_logits, num_items_in_batch)["total"]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())
