"""Compares ``lsr_hf.fused_loss.FusedTwoValuedObjective`` with ``lsr_hf.losses._TwoValuedObjective`` in float64, and
``FusedSoftTwoValuedObjective`` (soft targets) with ``_SoftTwoValuedObjective`` (``soft`` cases).

On the CPU, run with ``TRITON_INTERPRET=1`` (set before the kernels are defined, i.e. before ``lsr_hf.fused_loss`` is
imported) so that the Triton kernels are interpreted on CPU tensors; it prints one JSON object, case name -> measured
errors and checks, which ``tests/test_fused_loss.py`` asserts on. ``python tests/fused_loss_check.py cuda`` runs the
same cases on a GPU and prints a pass/fail line per case. ``CASES`` and ``problems`` are importable without Triton.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

# name -> spec. Defaults: lsr_os_tc (a = 0.5, τ = 8, α = 0.3), B = 6, K = 10, float32 logits ~ 3·N(0, 1), two
# ignored rows, denominator None, contiguous layout, MAX_BLOCK_K unchanged (one chunk).
CASES: dict[str, dict[str, Any]] = {
    "tc_tau8": {},
    "tc_alpha1_kl_only": {"alpha": 1.0, "correct_prob": 0.3, "temperature": 2.5},
    "tc_alpha0_ce_only": {"alpha": 0.0},
    "lsr_tau1_int_denominator": {"method": "lsr", "num_classes": 7, "denominator": 11},
    "tfkd_k2_float_tensor_denominator": {"method": "tfkd", "num_classes": 2, "denominator": "float_tensor"},
    "tfkd_underflowing_b": {"method": "tfkd", "teacher_temperature": 1e-3, "num_classes": 5},
    "lsr_os_chunked_long_tensor_denominator": {
        "method": "lsr_os",
        "temperature": 2.5,
        "num_classes": 37,
        "block": 16,
        "denominator": "long_tensor",
    },
    "tc_chunked_exact_multiple": {"correct_prob": 0.3, "temperature": 4.0, "num_classes": 32, "block": 8},
    "all_ignored": {"ignore": "all", "num_classes": 9},
    "all_ignored_chunked_int_denominator": {"ignore": "all", "num_classes": 20, "block": 8, "denominator": 5},
    "none_ignored": {"ignore": "none", "num_classes": 12},
    "large_logits": {"scale": 1e4, "num_classes": 33},
    "large_offset_chunked": {"method": "lsr_os", "temperature": 4.0, "offset": 1e4, "num_classes": 40, "block": 16},
    "column_strided_logits": {"layout": "column_stride", "num_classes": 13},
    "row_padded_logits": {"layout": "row_padded", "num_classes": 13, "denominator": "long_tensor"},
    "float64": {"dtype": "float64", "temperature": 3.0, "num_classes": 11, "denominator": 9},
    "float64_chunked": {"dtype": "float64", "num_classes": 21, "block": 8},
    "float16": {"dtype": "float16", "num_classes": 10},
    "bfloat16": {"dtype": "bfloat16", "num_classes": 10},
    "empty_batch": {"batch": 0},
    # labels the caller should have rejected: the reference clamps them into [0, K), the kernel must not read past
    # the row (row 0 is followed by row 1 in memory, so a read past its end would change the result)
    "out_of_range_labels_clamped": {"labels": {0: 10 + 3, 3: -5}},
    # soft targets (B, K) (FusedSoftTwoValuedObjective vs _SoftTwoValuedObjective): Dirichlet rows, some zeros
    "soft_tc": {"soft": True},
    "soft_lsr_tau1_int_denominator": {"soft": True, "method": "lsr", "num_classes": 7, "denominator": 11},
    "soft_tfkd_underflowing_b": {"soft": True, "method": "tfkd", "teacher_temperature": 1e-3, "num_classes": 5},
    "soft_lsr_os_chunked_long_tensor_denominator": {
        "soft": True,
        "method": "lsr_os",
        "temperature": 2.5,
        "num_classes": 37,
        "block": 16,
        "denominator": "long_tensor",
    },
    "soft_one_hot_equals_hard": {"soft": "one_hot", "correct_prob": 0.3, "temperature": 4.0},
    "soft_large_offset_chunked": {"soft": True, "offset": 1e4, "num_classes": 40, "block": 16},
    "soft_large_logits": {"soft": True, "scale": 1e4, "num_classes": 33},
    "soft_column_strided": {"soft": True, "layout": "column_stride", "num_classes": 13},
    "soft_float64_chunked": {"soft": True, "dtype": "float64", "num_classes": 21, "block": 8, "denominator": 9},
    "soft_bfloat16": {"soft": True, "dtype": "bfloat16", "num_classes": 10},
    "soft_empty_batch": {"soft": True, "batch": 0},
}

# relative to the float64 reference; half-precision logits are upcast (exact), only their gradients are rounded
TOLERANCE = {"float32": 1e-6, "float64": 1e-12, "float16": 1e-6, "bfloat16": 1e-6}
GRAD_TOLERANCE = {"float32": 1e-6, "float64": 1e-12, "float16": 2e-3, "bfloat16": 1e-2}


def _relative_error(value: Any, reference: Any) -> float:
    """max |value − reference| / max |reference| (the reference's scale; exact zeros must be matched exactly)."""
    value, reference = value.detach().double(), reference.detach().double()
    if reference.numel() == 0:
        return 0.0 if value.numel() == 0 else math.inf
    diff = (value - reference).abs().max().item()
    scale = reference.abs().max().item()
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def _views(base: Any, all_labels: Any, spec: dict[str, Any]) -> tuple[Any, Any]:
    """The case's logits and labels as views of ``base`` and ``all_labels`` (strided layouts stay strided)."""
    layout, batch, num_classes = spec.get("layout"), spec.get("batch", 6), spec.get("num_classes", 10)
    if layout == "column_stride":
        logits = base[:, ::2]
    elif layout == "row_padded":
        logits = base[:, :num_classes]
    else:
        logits = base
    return logits, (all_labels[::2] if layout else all_labels[:batch])


def run_case(spec: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """The fused objective on ``device`` vs ``_TwoValuedObjective`` in float64 on the CPU, on the same inputs."""
    import torch

    from lsr_hf import fused_loss
    from lsr_hf.losses import OSTCConfig, _SoftTwoValuedObjective, _TwoValuedObjective, two_valued_teacher

    batch, num_classes = spec.get("batch", 6), spec.get("num_classes", 10)
    dtype = getattr(torch, spec.get("dtype", "float32"))
    config = OSTCConfig(
        method=spec.get("method", "lsr_os_tc"),
        alpha=spec.get("alpha", 0.3),
        temperature=spec.get("temperature", 8.0),
        correct_prob=spec.get("correct_prob", 0.5),
        teacher_temperature=spec.get("teacher_temperature", 20.0),
    )
    log_a, log_b = two_valued_teacher(config, num_classes)
    ce_weight = 1.0 - config.alpha
    kl_weight = config.alpha * config.kl_weight(num_classes)
    tau = config.student_temperature

    generator = torch.Generator().manual_seed(sum(map(ord, json.dumps(spec, sort_keys=True))))
    width = 2 * num_classes if spec.get("layout") else num_classes
    base = torch.randn(batch, width, generator=generator, dtype=torch.float64) * spec.get("scale", 3.0)
    base = (base + spec.get("offset", 0.0)).to(dtype)
    all_labels = torch.randint(0, num_classes, (2 * batch,), generator=generator)
    logits, labels = _views(base, all_labels, spec)
    if batch >= 3:  # the first and the last class are targets
        labels[0], labels[1] = 0, num_classes - 1
    for row, label in spec.get("labels", {}).items():
        labels[row] = label
    ignore = spec.get("ignore", "some")
    if ignore == "all":
        labels[:] = -100
    elif ignore == "some" and batch >= 4:
        labels[2], labels[-1] = -100, -100
    denominator: Any = {"float_tensor": torch.tensor(3.0), "long_tensor": torch.tensor(7)}.get(
        spec.get("denominator"), spec.get("denominator")
    )

    soft = spec.get("soft", False)
    if soft:  # soft targets replace the class ids (no ignored rows); "one_hot": the one-hot rows of the labels
        labels = labels.clamp(0, num_classes - 1)
        if soft == "one_hot":
            all_labels = torch.nn.functional.one_hot(all_labels.clamp(0, num_classes - 1), num_classes).float()
            all_labels[: len(labels)] = torch.nn.functional.one_hot(labels, num_classes).float()
        else:
            weights = -torch.rand(2 * batch, num_classes, generator=generator, dtype=torch.float64).log()
            weights[weights < 0.3] = 0.0  # some exact zeros
            weights[:, 0] += 1e-3
            all_labels = (weights / weights.sum(1, keepdim=True)).float()
        logits, labels = _views(base, all_labels, spec)
    device_logits, device_labels = _views(base.to(device), all_labels.to(device), spec)
    device_denominator = denominator.to(device) if isinstance(denominator, torch.Tensor) else denominator
    default_block = fused_loss.MAX_BLOCK_K
    fused_loss.MAX_BLOCK_K = spec.get("block", default_block)
    try:
        z = device_logits.detach().requires_grad_(True)
        fused = fused_loss.FusedSoftTwoValuedObjective if soft else fused_loss.FusedTwoValuedObjective
        total, sums = fused.apply(z, device_labels, device_denominator, ce_weight, kl_weight, tau, log_a, log_b)
        (total * 1.7).backward()
    finally:
        fused_loss.MAX_BLOCK_K = default_block
    total, sums, grad = total.cpu(), sums.cpu(), z.grad.cpu()

    z_ref = logits.detach().double().requires_grad_(True)
    if soft == "one_hot":  # the class-id objective on the same rows: soft one-hot must give the hard result
        reference, reference_labels = _TwoValuedObjective, labels.argmax(1)
    elif soft:
        reference, reference_labels = _SoftTwoValuedObjective, labels.double()
    else:
        reference, reference_labels = _TwoValuedObjective, labels
    total_ref, sums_ref = reference.apply(
        z_ref, reference_labels, denominator, ce_weight, kl_weight, tau, log_a, log_b
    )
    (total_ref * 1.7).backward()

    kept = torch.ones(len(labels), dtype=torch.bool) if soft else labels != -100
    expected_dtype = torch.promote_types(dtype, torch.float32)
    return {
        "total_error": _relative_error(total, total_ref),
        "sums_errors": [_relative_error(sums[i], sums_ref[i]) for i in range(3)],
        "grad_error": _relative_error(grad, z_ref.grad),
        "finite": bool(torch.isfinite(total).item() and torch.isfinite(sums).all() and torch.isfinite(grad).all()),
        "ignored_grad_is_zero": bool((grad[~kept] == 0).all()),
        "shapes_ok": total.shape == () and sums.shape == (3,) and grad.shape == z.shape,
        "dtypes_ok": total.dtype == expected_dtype and sums.dtype == expected_dtype and grad.dtype == dtype,
        "sums_no_grad": not sums.requires_grad,
        "total": total.item(),
        "dtype": spec.get("dtype", "float32"),
    }


def problems(name: str, result: dict[str, Any]) -> list[str]:
    """What is wrong with one case's result (empty when it passes)."""
    if "error" in result:
        return [result["error"]]
    found = []
    tolerance, grad_tolerance = TOLERANCE[result["dtype"]], GRAD_TOLERANCE[result["dtype"]]
    if result["total_error"] > tolerance:
        found.append(f"total off by {result['total_error']:.3g} (relative)")
    if max(result["sums_errors"]) > tolerance:
        found.append(f"sums off by {result['sums_errors']} (relative)")
    if result["grad_error"] > grad_tolerance:
        found.append(f"gradient off by {result['grad_error']:.3g} (relative to its largest entry)")
    checks = ("finite", "ignored_grad_is_zero", "shapes_ok", "dtypes_ok", "sums_no_grad")
    found += [f"{check} is false" for check in checks if not result[check]]
    spec = CASES[name]
    if (spec.get("ignore") == "all" or spec.get("batch") == 0) and result["total"] != 0.0:
        found.append(f"total is {result['total']}, not 0")
    return found


def main() -> None:
    """``TRITON_INTERPRET=1 python tests/fused_loss_check.py``: JSON results on the CPU (for the test);
    ``python tests/fused_loss_check.py cuda``: the same cases compiled on a GPU, a pass/fail line per case."""
    import torch

    device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("on the CPU, run with TRITON_INTERPRET=1 (the kernels are interpreted)")
    torch.set_num_threads(1)
    results = {}
    for name, spec in CASES.items():
        try:
            results[name] = run_case(spec, device)
        except Exception as error:  # noqa: BLE001 - reported per case by the test, the other cases still run
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    if device == "cpu":
        print(json.dumps(results))
        return
    failed = 0
    for name, result in results.items():
        found = problems(name, result)
        failed += bool(found)
        print(f"{'FAIL' if found else 'ok  '} {name}: {'; '.join(found) if found else result}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
