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

This module imports nothing from the rest of the package.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("ce", "lsr", "tfkd", "lsr_os", "lsr_os_tc", "kd")
SMOOTHING_METHODS = ("lsr", "tfkd", "lsr_os", "lsr_os_tc")
TFKD_CORRECT_PROB = 0.99  # p_d(c) of Tf-KD_reg's hand-made teacher before its temperature softmax (Yuan et al.)
IGNORE_INDEX = -100  # labels equal to this are skipped, as in F.cross_entropy


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass
class OSTCConfig:
    """Hyperparameters of the objective. Validated on construction; invalid values raise ``ValueError``
    naming the field, the value and the allowed range."""

    method: str = field(
        default="lsr_os_tc", metadata={"help": f"Training objective, one of {', '.join(METHODS)}."}
    )
    alpha: float = field(
        default=0.5, metadata={"help": "α in [0, 1]: weight of the distillation term; (1-α) weights the CE."}
    )
    temperature: float = field(
        default=4.0, metadata={"help": "τ > 0: the student's softmax temperature in the KL term (lsr_os, lsr_os_tc, kd)."}
    )
    correct_prob: float = field(
        default=0.2, metadata={"help": "a in [1/K, 1): the TC virtual teacher's probability of the true class (lsr_os_tc)."}
    )
    teacher_temperature: float = field(
        default=20.0, metadata={"help": "T_t > 0: temperature of Tf-KD_reg's hand-made teacher (tfkd)."}
    )
    multiplier: float = field(
        default=1.0, metadata={"help": "> 0: Tf-KD_reg's per-model multiplier of its KL term (tfkd)."}
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

    def check_num_classes(self, num_classes: int) -> None:
        """Checks what depends on the number of classes K (raises ``ValueError``)."""
        if num_classes < 2:
            raise ValueError(f"the number of classes must be >= 2, got {num_classes}")
        if self.method == "lsr_os_tc" and self.correct_prob < 1.0 / num_classes - 1e-12:
            raise ValueError(
                f"correct_prob must be in [1/K, 1) = [{1.0 / num_classes:.6g}, 1) for K = {num_classes} classes, "
                f"got {self.correct_prob!r}"
            )

    @property
    def effective_alpha(self) -> float:
        return 0.0 if self.method == "ce" else self.alpha

    @property
    def student_temperature(self) -> float:
        """τ of p_τ: 1 for ``lsr`` and ``tfkd``, the configured temperature otherwise."""
        return self.temperature if self.method in ("lsr_os", "lsr_os_tc", "kd") else 1.0

    def kl_weight(self, num_classes: int) -> float:
        """w of the KL term."""
        if self.method == "tfkd":
            return self.multiplier / num_classes
        if self.method in ("lsr_os", "lsr_os_tc", "kd"):
            return self.temperature**2
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def two_valued_teacher(config: OSTCConfig, num_classes: int) -> tuple[float, float]:
    """Log-probabilities (log a, log b) of a hand-made teacher: q(c) = a, q(k≠c) = b = (1-a)/(K-1).

    Computed in float64 in log space so that a b that underflows (Tf-KD with a tiny T_t) gives 0·log b = 0.
    """
    k = num_classes
    if config.method in ("lsr", "lsr_os"):
        return -math.log(k), -math.log(k)
    if config.method == "lsr_os_tc":
        a = config.correct_prob
        return math.log(a), math.log1p(-a) - math.log(k - 1)
    if config.method == "tfkd":
        # softmax over K values: one equals 0.99 / T_t, K-1 equal 0.01 / ((K-1) T_t)
        hi = TFKD_CORRECT_PROB / config.teacher_temperature
        lo = (1.0 - TFKD_CORRECT_PROB) / (k - 1) / config.teacher_temperature
        log_norm = hi + math.log1p((k - 1) * math.exp(lo - hi))
        return hi - log_norm, lo - log_norm
    raise ValueError(f"method {config.method!r} has no two-valued teacher")


class _TwoValuedTeacherKL(torch.autograd.Function):
    """Per-sample ``(CE, KL(q ‖ p_τ))`` for a two-valued teacher, with the analytic backward

        ∂CE/∂z = p − y,        ∂KL/∂z = (p_τ − q) / τ,        q = b + (a − b)·y

    (one exp per softmax and one scatter instead of autograd's chain through log_softmax, gather and sum).
    Forward uses Σ_k q_k log p_τ,k = (a − b)·log p_τ,c + b·Σ_k log p_τ,k since a + (K−1)·b = 1.
    """

    @staticmethod
    def forward(ctx, z, labels, tau: float, log_a: float, log_b: float):  # type: ignore[override]
        num_classes = z.shape[1]
        a, b = math.exp(log_a), math.exp(log_b)
        index = labels[:, None]
        log_p = torch.log_softmax(z, dim=1)
        log_p_tau = log_p if tau == 1.0 else torch.log_softmax(z * (1.0 / tau), dim=1)
        ce = -log_p.gather(1, index).squeeze(1)
        log_p_tau_c = -ce if tau == 1.0 else log_p_tau.gather(1, index).squeeze(1)
        entropy_term = a * log_a + (num_classes - 1) * b * log_b  # Σ_k q_k log q_k, a constant
        kl = entropy_term - (a - b) * log_p_tau_c - b * log_p_tau.sum(1)
        ctx.save_for_backward(log_p, log_p_tau, index)
        ctx.constants = (tau, a, b)
        return ce, kl

    @staticmethod
    def backward(ctx, grad_ce, grad_kl):  # type: ignore[override]
        log_p, log_p_tau, index = ctx.saved_tensors
        tau, a, b = ctx.constants
        grad_kl = grad_kl / tau
        grad = log_p.exp().mul_(grad_ce[:, None])
        grad.add_(log_p_tau.exp().sub_(b).mul_(grad_kl[:, None]))
        grad.scatter_add_(1, index, -(grad_ce + (a - b) * grad_kl)[:, None])
        return grad, None, None, None, None


def ostc_per_sample(
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: OSTCConfig,
    teacher_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample CE and KL(q ‖ p_τ); rows labelled ``IGNORE_INDEX`` get 0 for both (and no gradient).

    Args:
        logits: (B, K) student logits of any float dtype (computed in float32; float64 stays float64).
        labels: (B,) integer class indices in [0, K) or ``IGNORE_INDEX``.
        teacher_logits: (B, K) real teacher logits, ``kd`` only.
    Returns:
        ``(ce, kl)``, each (B,). ``kl`` is zeros for ``ce``.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (batch, num_classes), got {tuple(logits.shape)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    num_classes = logits.shape[1]
    config.check_num_classes(num_classes)
    keep = labels != IGNORE_INDEX
    bad = keep & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):  # one host sync: a clear error instead of a device-side assert
        raise ValueError(
            f"labels must be in [0, {num_classes}) or {IGNORE_INDEX} (ignored), got {labels[bad][:5].tolist()}"
        )
    z = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16/fp16 -> float32; float64 stays
    if config.method == "ce":
        ce = F.cross_entropy(z, labels, reduction="none", ignore_index=IGNORE_INDEX)
        return ce, torch.zeros_like(ce)

    safe_labels = torch.where(keep, labels, 0)
    if config.method == "kd":
        if teacher_logits is None:
            raise ValueError("method 'kd' needs teacher_logits (pass teacher_model= to OSTCTrainer)")
        if teacher_logits.shape != logits.shape:
            raise ValueError(
                f"teacher_logits must have the student's shape {tuple(logits.shape)}, got {tuple(teacher_logits.shape)}"
            )
        tau = config.temperature
        ce = F.cross_entropy(z, labels, reduction="none", ignore_index=IGNORE_INDEX)
        log_p_tau = F.log_softmax(z / tau, dim=1)
        log_q = F.log_softmax(teacher_logits.detach().to(z.dtype) / tau, dim=1)
        kl = F.kl_div(log_p_tau, log_q, reduction="none", log_target=True).sum(1)
        return ce, kl * keep

    log_a, log_b = two_valued_teacher(config, num_classes)
    ce, kl = _TwoValuedTeacherKL.apply(z, safe_labels, config.student_temperature, log_a, log_b)
    return ce * keep, kl * keep


class OSTCLoss(nn.Module):
    """The objective as an ``nn.Module``: ``loss = OSTCLoss(cfg)(logits, labels)``.

    ``forward`` also takes a model output (anything with ``.logits``) and ``num_items_in_batch``, so it can be given
    to ``transformers.Trainer(compute_loss_func=OSTCLoss(cfg))``. Reduction: the mean over non-ignored rows, or, when
    ``num_items_in_batch`` is given, their sum divided by it (Trainer's gradient-accumulation convention).
    """

    def __init__(self, config: OSTCConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("pass either an OSTCConfig or its fields as keyword arguments, not both")
        self.config = config if config is not None else OSTCConfig(**kwargs)

    def components(
        self,
        logits: Any,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> dict[str, torch.Tensor]:
        """``total`` (the loss, reduced as in ``forward``) and the batch means of its parts ``ce`` and ``kl``
        (KL(q ‖ p_τ) before its weight α·w), for logging."""
        logits = logits.logits if hasattr(logits, "logits") else logits
        ce, kl = ostc_per_sample(logits, labels, self.config, teacher_logits)
        alpha = self.config.effective_alpha
        per_sample = (1.0 - alpha) * ce
        if alpha > 0:
            per_sample = per_sample + alpha * self.config.kl_weight(logits.shape[1]) * kl
        num_kept = (labels != IGNORE_INDEX).sum().clamp(min=1)
        denominator = num_kept if num_items_in_batch is None else num_items_in_batch
        total = per_sample.sum() / denominator
        return {"total": total, "ce": ce.detach().sum() / num_kept, "kl": kl.detach().sum() / num_kept}

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
