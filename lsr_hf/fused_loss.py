"""Fused Triton kernels for the two-valued-teacher objective (``lsr_hf.losses._TwoValuedObjective``).

Per row i of the logits z (B, K) with label c, mask m = [label ≠ -100], teacher q(c) = a, q(k≠c) = b, S = Σ_k z_k:

    CE = lse(z) − z_c
    KL = [a log a + (K−1)·b log b] + lse(z/τ) − (a·z_c + b·(S − z_c)) / τ
    total = (ce_weight·Σ m·CE + kl_weight·Σ m·KL) / D              D = denominator, or max(Σ m, 1)
    ∂total/∂z_k = m·g/D · [ce_weight·(p_k − y_k) + kl_weight/τ·(p_τ,k − q_k)]

with p = softmax(z), p_τ = softmax(z/τ), y the one-hot label and g the incoming gradient of ``total``. The forward is
one kernel launch (one program per row, writing per-row terms) plus a deterministic ``sum`` over the rows; the backward
is one launch that recomputes p and p_τ from z and three saved per-row statistics. No atomics: results are bitwise
reproducible. ``OSTCLoss`` uses it instead of ``_TwoValuedObjective`` for CUDA logits when
``OSTCConfig.use_triton_kernel`` is set (which requires ``triton_available()``); under ``TRITON_INTERPRET=1`` the kernels also run on CPU tensors (slowly; used by the tests).

Soft targets y (B, K) — mixup, CutMix, smoothed or user probability rows — have their own pair of kernels
(``FusedSoftTwoValuedObjective``, the drop-in for ``lsr_hf.losses._SoftTwoValuedObjective``). Per row, with s = Σ_k y_k
(1 for a probability row), q = b·s + (a − b)·y, and M the row max:

    CE = s·log Σ exp(z − M) − Σ_k y_k (z_k − M)
    KL = Σ_k q_k log q_k − Σ_k q_k log p_τ,k
    ∂total/∂z_k = g/D · [ce_weight·(s·p_k − y_k) + kl_weight/τ·(s·p_τ,k − q_k)]

Every row counts (no ignore index; D = denominator or B). The forward reads a row's targets twice (the teacher
entropy needs s first). Checked against the float64 torch objective under the interpreter
(``tests/fused_loss_check.py``, the ``soft_*`` cases); not yet compiled on a GPU
(``python tests/fused_loss_check.py cuda`` does that).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on machines without triton
    triton = None
    tl = None

IGNORE_INDEX = -100  # as lsr_hf.losses.IGNORE_INDEX (this module imports nothing from the package)
MAX_BLOCK_K = 16384  # widest row chunk a program holds at once; longer rows are processed in chunks of this size


def triton_available() -> bool:
    """Whether Triton could be imported (says nothing about a GPU being present)."""
    return triton is not None


def _launch_config(num_classes: int, dtype: torch.dtype) -> tuple[int, int]:
    """(BLOCK_K, num_warps) for rows of ``num_classes`` logits: the next power of two, capped at ``MAX_BLOCK_K``
    (half of it for float64), with at most 16 elements per thread (32 for a full float32 block)."""
    cap = MAX_BLOCK_K // 2 if dtype == torch.float64 else MAX_BLOCK_K
    block = min(triton.next_power_of_2(num_classes), cap)
    return block, min(16, max(1, block // 512))


if triton is not None:
    _IGNORE = tl.constexpr(IGNORE_INDEX)

    @triton.jit(do_not_specialize=["num_rows"])
    def _forward_kernel(
        z_ptr,
        labels_ptr,
        rows_ptr,  # (3, B): m·CE, m·KL, m
        weighted_ptr,  # (B,): m·(ce_weight·CE + kl_weight·KL), divided by D when D is known
        stats_ptr,  # (3, B): max_k z, log Σ exp(z − max), log Σ exp((z − max)/τ)
        denominator_ptr,
        num_rows,
        num_classes,
        stride_z,
        stride_labels,
        ce_weight: tl.float64,
        kl_weight: tl.float64,
        inv_tau: tl.float64,
        a: tl.float64,
        b: tl.float64,
        entropy: tl.float64,
        denominator: tl.float64,
        BLOCK_K: tl.constexpr,
        DENOMINATOR_MODE: tl.constexpr,  # 0: none (divide on the host), 1: the float argument, 2: load the pointer
    ):
        """One row per program. Online log-sum-exp over chunks of BLOCK_K columns, all relative to the running max
        M so that |z| ~ 1e4 (or a large common offset) loses no precision:

            log_s = log Σ exp(z − M),  log_st = log Σ exp((z − M)/τ),  S_M = Σ (z − M)
            CE = log_s − (z_c − M),   KL = entropy + log_st − (a·(z_c − M) + b·(S_M − (z_c − M)))/τ
        """
        acc = rows_ptr.dtype.element_ty  # float32, or float64 for float64 logits
        row = tl.program_id(0).to(tl.int64)
        label = tl.load(labels_ptr + row * stride_labels)
        keep = label != _IGNORE
        target = tl.minimum(tl.maximum(label, 0), num_classes - 1).to(tl.int64)  # never out of bounds
        z_row = z_ptr + row * stride_z
        z_target = tl.load(z_row + target).to(acc)
        inv_tau = tl.full([], inv_tau, acc)

        cols = tl.arange(0, BLOCK_K)
        mask = cols < num_classes
        x = tl.load(z_row + cols, mask=mask, other=float("-inf")).to(acc)
        row_max = tl.max(x, axis=0)
        shifted = x - row_max
        sum_exp = tl.sum(tl.exp(shifted), axis=0)
        sum_exp_tau = tl.sum(tl.exp(shifted * inv_tau), axis=0)
        sum_shifted = tl.sum(tl.where(mask, shifted, 0.0), axis=0)
        for start in range(BLOCK_K, num_classes, BLOCK_K):
            cols = start + tl.arange(0, BLOCK_K)
            mask = cols < num_classes
            x = tl.load(z_row + cols, mask=mask, other=float("-inf")).to(acc)
            new_max = tl.maximum(row_max, tl.max(x, axis=0))
            step = row_max - new_max  # <= 0: rescale what was accumulated relative to the old max
            shifted = x - new_max
            sum_exp = sum_exp * tl.exp(step) + tl.sum(tl.exp(shifted), axis=0)
            sum_exp_tau = sum_exp_tau * tl.exp(step * inv_tau) + tl.sum(tl.exp(shifted * inv_tau), axis=0)
            sum_shifted = sum_shifted + step * start + tl.sum(tl.where(mask, shifted, 0.0), axis=0)
            row_max = new_max

        log_s = tl.log(sum_exp)
        log_st = tl.log(sum_exp_tau)
        target_shifted = z_target - row_max
        ce = log_s - target_shifted
        teacher_dot = tl.full([], a, acc) * target_shifted + tl.full([], b, acc) * (sum_shifted - target_shifted)
        kl = tl.full([], entropy, acc) + log_st - teacher_dot * inv_tau
        # where, not a product with m: an ignored row contributes exactly 0 even with non-finite logits
        ce = tl.where(keep, ce, 0.0)
        kl = tl.where(keep, kl, 0.0)
        weighted = tl.full([], ce_weight, acc) * ce + tl.full([], kl_weight, acc) * kl
        if DENOMINATOR_MODE == 1:
            weighted = weighted / tl.full([], denominator, acc)
        if DENOMINATOR_MODE == 2:
            weighted = weighted / tl.load(denominator_ptr).to(acc)
        tl.store(rows_ptr + row, ce)
        tl.store(rows_ptr + num_rows + row, kl)
        tl.store(rows_ptr + 2 * num_rows + row, keep.to(acc))
        tl.store(weighted_ptr + row, weighted)
        tl.store(stats_ptr + row, row_max)
        tl.store(stats_ptr + num_rows + row, log_s)
        tl.store(stats_ptr + 2 * num_rows + row, log_st)

    @triton.jit(do_not_specialize=["num_rows"])
    def _backward_kernel(
        z_ptr,
        labels_ptr,
        stats_ptr,
        grad_ptr,  # (B, K) contiguous
        grad_total_ptr,
        denominator_ptr,
        num_rows,
        num_classes,
        stride_z,
        stride_labels,
        ce_weight: tl.float64,
        kl_weight_over_tau: tl.float64,
        inv_tau: tl.float64,
        a: tl.float64,
        b: tl.float64,
        denominator: tl.float64,
        BLOCK_K: tl.constexpr,
        DENOMINATOR_MODE: tl.constexpr,  # 1: the float argument, 2: load the pointer
    ):
        """One row per program: ∂/∂z_k = m·g/D · [ce_weight·(p_k − y_k) + kl_weight/τ·(p_τ,k − q_k)], with
        p_k = exp(z_k − M − log_s) and p_τ,k = exp((z_k − M)/τ − log_st) from the forward's per-row statistics."""
        acc = stats_ptr.dtype.element_ty
        row = tl.program_id(0).to(tl.int64)
        label = tl.load(labels_ptr + row * stride_labels)
        keep = label != _IGNORE
        target = tl.minimum(tl.maximum(label, 0), num_classes - 1)
        row_max = tl.load(stats_ptr + row)
        log_s = tl.load(stats_ptr + num_rows + row)
        log_st = tl.load(stats_ptr + 2 * num_rows + row)
        if DENOMINATOR_MODE == 1:
            scale = tl.load(grad_total_ptr).to(acc) / tl.full([], denominator, acc)
        else:
            scale = tl.load(grad_total_ptr).to(acc) / tl.load(denominator_ptr).to(acc)
        scale = tl.where(keep, scale, 0.0)
        ce_coef = scale * tl.full([], ce_weight, acc)
        kl_coef = scale * tl.full([], kl_weight_over_tau, acc)
        a = tl.full([], a, acc)
        b = tl.full([], b, acc)
        inv_tau = tl.full([], inv_tau, acc)
        z_row = z_ptr + row * stride_z
        grad_row = grad_ptr + row * num_classes
        for start in range(0, num_classes, BLOCK_K):
            cols = start + tl.arange(0, BLOCK_K)
            mask = cols < num_classes
            shifted = tl.load(z_row + cols, mask=mask, other=0.0).to(acc) - row_max
            p = tl.exp(shifted - log_s)
            p_tau = tl.exp(shifted * inv_tau - log_st)
            is_target = cols == target
            grad = ce_coef * (p - tl.where(is_target, 1.0, 0.0)) + kl_coef * (p_tau - tl.where(is_target, a, b))
            tl.store(grad_row + cols, grad.to(grad_ptr.dtype.element_ty), mask=mask)


    @triton.jit(do_not_specialize=["num_rows"])
    def _soft_forward_kernel(
        z_ptr,
        y_ptr,  # (B, K) soft targets
        rows_ptr,  # (3, B): CE, KL, 1
        weighted_ptr,  # (B,): ce_weight·CE + kl_weight·KL, divided by D when D is known
        stats_ptr,  # (4, B): max_k z, log Σ exp(z − max), log Σ exp((z − max)/τ), s = Σ_k y_k
        denominator_ptr,
        num_rows,
        num_classes,
        stride_z,
        stride_y,
        ce_weight: tl.float64,
        kl_weight: tl.float64,
        inv_tau: tl.float64,
        a: tl.float64,
        b: tl.float64,
        denominator: tl.float64,
        BLOCK_K: tl.constexpr,
        DENOMINATOR_MODE: tl.constexpr,  # 0: none (divide on the host), 1: the float argument, 2: load the pointer
    ):
        """One row per program, soft target y: online log-sum-exp as in ``_forward_kernel`` plus s = Σ y and
        Y_M = Σ y·(z − M) (rescaled as M grows: Y_M += (M_old − M_new)·s), then a second pass over y for the teacher
        entropy Σ q log q, q = b·s + (a − b)·y:

            CE = s·log_s − Y_M
            KL = Σ q log q − b·s·(S_M/τ − K·log_st) − (a − b)·(Y_M/τ − s·log_st)
        """
        acc = rows_ptr.dtype.element_ty
        row = tl.program_id(0).to(tl.int64)
        z_row = z_ptr + row * stride_z
        y_row = y_ptr + row * stride_y
        inv_tau = tl.full([], inv_tau, acc)
        a = tl.full([], a, acc)
        b = tl.full([], b, acc)

        cols = tl.arange(0, BLOCK_K)
        mask = cols < num_classes
        x = tl.load(z_row + cols, mask=mask, other=float("-inf")).to(acc)
        y = tl.load(y_row + cols, mask=mask, other=0.0).to(acc)
        row_max = tl.max(x, axis=0)
        shifted = tl.where(mask, x - row_max, 0.0)
        sum_exp = tl.sum(tl.where(mask, tl.exp(shifted), 0.0), axis=0)
        sum_exp_tau = tl.sum(tl.where(mask, tl.exp(shifted * inv_tau), 0.0), axis=0)
        sum_shifted = tl.sum(shifted, axis=0)
        y_sum = tl.sum(y, axis=0)
        y_dot = tl.sum(y * shifted, axis=0)
        for start in range(BLOCK_K, num_classes, BLOCK_K):
            cols = start + tl.arange(0, BLOCK_K)
            mask = cols < num_classes
            x = tl.load(z_row + cols, mask=mask, other=float("-inf")).to(acc)
            y = tl.load(y_row + cols, mask=mask, other=0.0).to(acc)
            new_max = tl.maximum(row_max, tl.max(x, axis=0))
            step = row_max - new_max  # <= 0: rescale what was accumulated relative to the old max
            shifted = tl.where(mask, x - new_max, 0.0)
            sum_exp = sum_exp * tl.exp(step) + tl.sum(tl.where(mask, tl.exp(shifted), 0.0), axis=0)
            sum_exp_tau = sum_exp_tau * tl.exp(step * inv_tau) + tl.sum(
                tl.where(mask, tl.exp(shifted * inv_tau), 0.0), axis=0
            )
            sum_shifted = sum_shifted + step * start + tl.sum(shifted, axis=0)
            y_dot = y_dot + step * y_sum + tl.sum(y * shifted, axis=0)
            y_sum = y_sum + tl.sum(y, axis=0)
            row_max = new_max

        entropy = tl.sum(tl.zeros([BLOCK_K], dtype=acc), axis=0)  # Σ_k q_k log q_k, 0·log 0 = 0
        for start in range(0, num_classes, BLOCK_K):
            cols = start + tl.arange(0, BLOCK_K)
            mask = cols < num_classes
            y = tl.load(y_row + cols, mask=mask, other=0.0).to(acc)
            q = b * y_sum + (a - b) * y
            positive = mask & (q > 0)
            entropy = entropy + tl.sum(tl.where(positive, q * tl.log(tl.where(positive, q, 1.0)), 0.0), axis=0)

        log_s = tl.log(sum_exp)
        log_st = tl.log(sum_exp_tau)
        ce = y_sum * log_s - y_dot
        teacher_dot = b * y_sum * (sum_shifted * inv_tau - num_classes * log_st) + (a - b) * (
            y_dot * inv_tau - y_sum * log_st
        )
        kl = entropy - teacher_dot
        weighted = tl.full([], ce_weight, acc) * ce + tl.full([], kl_weight, acc) * kl
        if DENOMINATOR_MODE == 1:
            weighted = weighted / tl.full([], denominator, acc)
        if DENOMINATOR_MODE == 2:
            weighted = weighted / tl.load(denominator_ptr).to(acc)
        tl.store(rows_ptr + row, ce)
        tl.store(rows_ptr + num_rows + row, kl)
        tl.store(rows_ptr + 2 * num_rows + row, tl.full([], 1.0, acc))
        tl.store(weighted_ptr + row, weighted)
        tl.store(stats_ptr + row, row_max)
        tl.store(stats_ptr + num_rows + row, log_s)
        tl.store(stats_ptr + 2 * num_rows + row, log_st)
        tl.store(stats_ptr + 3 * num_rows + row, y_sum)

    @triton.jit(do_not_specialize=["num_rows"])
    def _soft_backward_kernel(
        z_ptr,
        y_ptr,
        stats_ptr,
        grad_ptr,  # (B, K) contiguous
        grad_total_ptr,
        denominator_ptr,
        num_rows,
        num_classes,
        stride_z,
        stride_y,
        ce_weight: tl.float64,
        kl_weight_over_tau: tl.float64,
        inv_tau: tl.float64,
        a: tl.float64,
        b: tl.float64,
        denominator: tl.float64,
        BLOCK_K: tl.constexpr,
        DENOMINATOR_MODE: tl.constexpr,  # 1: the float argument, 2: load the pointer
    ):
        """One row per program: ∂/∂z_k = g/D · [ce_weight·(s·p_k − y_k) + kl_weight/τ·(s·p_τ,k − q_k)],
        q_k = b·s + (a − b)·y_k, from the forward's per-row statistics (s = Σ_k y_k)."""
        acc = stats_ptr.dtype.element_ty
        row = tl.program_id(0).to(tl.int64)
        row_max = tl.load(stats_ptr + row)
        log_s = tl.load(stats_ptr + num_rows + row)
        log_st = tl.load(stats_ptr + 2 * num_rows + row)
        y_sum = tl.load(stats_ptr + 3 * num_rows + row)
        if DENOMINATOR_MODE == 1:
            scale = tl.load(grad_total_ptr).to(acc) / tl.full([], denominator, acc)
        else:
            scale = tl.load(grad_total_ptr).to(acc) / tl.load(denominator_ptr).to(acc)
        ce_coef = scale * tl.full([], ce_weight, acc)
        kl_coef = scale * tl.full([], kl_weight_over_tau, acc)
        a = tl.full([], a, acc)
        b = tl.full([], b, acc)
        inv_tau = tl.full([], inv_tau, acc)
        z_row = z_ptr + row * stride_z
        y_row = y_ptr + row * stride_y
        grad_row = grad_ptr + row * num_classes
        for start in range(0, num_classes, BLOCK_K):
            cols = start + tl.arange(0, BLOCK_K)
            mask = cols < num_classes
            shifted = tl.load(z_row + cols, mask=mask, other=0.0).to(acc) - row_max
            y = tl.load(y_row + cols, mask=mask, other=0.0).to(acc)
            p = tl.exp(shifted - log_s)
            p_tau = tl.exp(shifted * inv_tau - log_st)
            q = b * y_sum + (a - b) * y
            grad = ce_coef * (y_sum * p - y) + kl_coef * (y_sum * p_tau - q)
            tl.store(grad_row + cols, grad.to(grad_ptr.dtype.element_ty), mask=mask)


def _denominator_args(denominator: Any, z: torch.Tensor) -> tuple[int, float, torch.Tensor | None]:
    """(mode, float value, tensor) for the kernels: 0 = None, 1 = a host number (a CPU tensor is read without a
    device sync), 2 = a tensor on z's device, read by the kernel (no host sync)."""
    if denominator is None:
        return 0, 0.0, None
    if isinstance(denominator, torch.Tensor):
        if denominator.device == z.device:
            return 2, 0.0, denominator
        return 1, float(denominator), None
    if isinstance(denominator, numbers.Real):
        return 1, float(denominator), None
    raise TypeError(f"denominator must be None, a number or a tensor, got {type(denominator).__name__}")


class FusedTwoValuedObjective(torch.autograd.Function):
    """Drop-in replacement of ``lsr_hf.losses._TwoValuedObjective`` (same arguments, same outputs): returns the
    loss ``(ce_weight·Σ m·CE + kl_weight·Σ m·KL) / D`` (0-dim) and the non-differentiable sums (Σ m·CE, Σ m·KL, Σ m),
    in float32 (float64 for float64 logits). One Triton launch forward, one backward (formulas: module docstring).
    Host ops per forward: three ``empty``, the launch, two ``sum``; with ``denominator=None`` also select, clamp, div.
    """

    @staticmethod
    def forward(ctx, z, labels, denominator, ce_weight, kl_weight, tau, log_a, log_b):  # type: ignore[override]
        num_rows, num_classes = z.shape
        ce_weight, kl_weight = float(ce_weight), float(kl_weight)  # the kernels take them as float64 scalars
        if z.stride(1) != 1:
            z = z.contiguous()
        dtype = torch.promote_types(z.dtype, torch.float32)
        a, b = math.exp(log_a), math.exp(log_b)
        entropy = a * log_a + (num_classes - 1) * b * log_b  # Σ_k q_k log q_k; b may underflow to 0 (tfkd)
        mode, denominator_value, denominator_tensor = _denominator_args(denominator, z)
        block, num_warps = _launch_config(num_classes, dtype)
        rows = torch.empty((3, num_rows), dtype=dtype, device=z.device)
        weighted = torch.empty((num_rows,), dtype=dtype, device=z.device)
        stats = torch.empty((3, num_rows), dtype=dtype, device=z.device)
        if num_rows > 0:
            _forward_kernel[(num_rows,)](
                z,
                labels,
                rows,
                weighted,
                stats,
                rows if denominator_tensor is None else denominator_tensor,
                num_rows,
                num_classes,
                z.stride(0),
                labels.stride(0),
                ce_weight,
                kl_weight,
                1.0 / tau,
                a,
                b,
                entropy,
                denominator_value,
                BLOCK_K=block,
                DENOMINATOR_MODE=mode,
                num_warps=num_warps,
            )
        sums = rows.sum(1)
        total = weighted.sum()
        if mode == 0:
            denominator_tensor = sums[2].clamp(min=1.0)
            total = total / denominator_tensor
            mode = 2
        ctx.save_for_backward(z, labels, stats)
        ctx.constants = (mode, denominator_value, denominator_tensor, ce_weight, kl_weight / tau, 1.0 / tau, a, b)
        ctx.launch = (block, num_warps)
        ctx.mark_non_differentiable(sums)
        ctx.set_materialize_grads(False)
        return total, sums

    @staticmethod
    def backward(ctx, grad_total, _grad_sums):  # type: ignore[override]
        if grad_total is None or not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None, None, None
        z, labels, stats = ctx.saved_tensors
        mode, denominator_value, denominator_tensor, ce_weight, kl_weight_over_tau, inv_tau, a, b = ctx.constants
        block, num_warps = ctx.launch
        num_rows, num_classes = z.shape
        grad = torch.empty((num_rows, num_classes), dtype=z.dtype, device=z.device)
        if num_rows > 0:
            _backward_kernel[(num_rows,)](
                z,
                labels,
                stats,
                grad,
                grad_total,
                grad_total if denominator_tensor is None else denominator_tensor,
                num_rows,
                num_classes,
                z.stride(0),
                labels.stride(0),
                ce_weight,
                kl_weight_over_tau,
                inv_tau,
                a,
                b,
                denominator_value,
                BLOCK_K=block,
                DENOMINATOR_MODE=mode,
                num_warps=num_warps,
            )
        return grad, None, None, None, None, None, None, None


class FusedSoftTwoValuedObjective(torch.autograd.Function):
    """Drop-in replacement of ``lsr_hf.losses._SoftTwoValuedObjective`` (soft targets y (B, K); same arguments and
    outputs): the loss ``(ce_weight·Σ CE + kl_weight·Σ KL) / D`` (D = ``denominator`` or B) and the sums
    (Σ CE, Σ KL, B), with CE = −Σ_k y_k log p_k and KL = KL(q ‖ p_τ), q = b·Σ_k y_k + (a − b)·y. One Triton launch
    forward (two passes over a row's targets: the teacher entropy needs Σ y first), one backward."""

    @staticmethod
    def forward(ctx, z, targets, denominator, ce_weight, kl_weight, tau, log_a, log_b):  # type: ignore[override]
        num_rows, num_classes = z.shape
        ce_weight, kl_weight = float(ce_weight), float(kl_weight)
        if z.stride(1) != 1:
            z = z.contiguous()
        if targets.stride(1) != 1:
            targets = targets.contiguous()
        dtype = torch.promote_types(z.dtype, torch.float32)
        a, b = math.exp(log_a), math.exp(log_b)
        mode, denominator_value, denominator_tensor = _denominator_args(denominator, z)
        block, num_warps = _launch_config(num_classes, dtype)
        rows = torch.empty((3, num_rows), dtype=dtype, device=z.device)
        weighted = torch.empty((num_rows,), dtype=dtype, device=z.device)
        stats = torch.empty((4, num_rows), dtype=dtype, device=z.device)
        if num_rows > 0:
            _soft_forward_kernel[(num_rows,)](
                z,
                targets,
                rows,
                weighted,
                stats,
                rows if denominator_tensor is None else denominator_tensor,
                num_rows,
                num_classes,
                z.stride(0),
                targets.stride(0),
                ce_weight,
                kl_weight,
                1.0 / tau,
                a,
                b,
                denominator_value,
                BLOCK_K=block,
                DENOMINATOR_MODE=mode,
                num_warps=num_warps,
            )
        sums = rows.sum(1)
        total = weighted.sum()
        if mode == 0:
            denominator_tensor = sums[2].clamp(min=1.0)
            total = total / denominator_tensor
            mode = 2
        ctx.save_for_backward(z, targets, stats)
        ctx.constants = (mode, denominator_value, denominator_tensor, ce_weight, kl_weight / tau, 1.0 / tau, a, b)
        ctx.launch = (block, num_warps)
        ctx.mark_non_differentiable(sums)
        ctx.set_materialize_grads(False)
        return total, sums

    @staticmethod
    def backward(ctx, grad_total, _grad_sums):  # type: ignore[override]
        if grad_total is None or not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None, None, None
        z, targets, stats = ctx.saved_tensors
        mode, denominator_value, denominator_tensor, ce_weight, kl_weight_over_tau, inv_tau, a, b = ctx.constants
        block, num_warps = ctx.launch
        num_rows, num_classes = z.shape
        grad = torch.empty((num_rows, num_classes), dtype=z.dtype, device=z.device)
        if num_rows > 0:
            _soft_backward_kernel[(num_rows,)](
                z,
                targets,
                stats,
                grad,
                grad_total,
                grad_total if denominator_tensor is None else denominator_tensor,
                num_rows,
                num_classes,
                z.stride(0),
                targets.stride(0),
                ce_weight,
                kl_weight_over_tau,
                inv_tau,
                a,
                b,
                denominator_value,
                BLOCK_K=block,
                DENOMINATOR_MODE=mode,
                num_warps=num_warps,
            )
        return grad, None, None, None, None, None, None, None
