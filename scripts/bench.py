#!/usr/bin/env python
"""Benchmarks (not tests).

    python scripts/bench.py loss [--device cpu|cuda] [--batch 128] [--classes 100 1000]

``loss``: forward+backward time of every method of ``OSTCLoss`` next to ``F.cross_entropy``, a naive vectorised
KL (B×K teacher tensor + ``F.kl_div``) and Tf-KD's reference code (a Python loop over the batch builds the teacher),
measured side by side in one run with ``torch.utils.benchmark``; prints a Markdown table of times and ratios to CE.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from lsr_hf import OSTCConfig, OSTCLoss

CONFIGS = {
    "lsr": OSTCConfig(method="lsr", alpha=0.1),
    "tfkd": OSTCConfig(method="tfkd", alpha=0.95, teacher_temperature=40.0, multiplier=1.0),
    "lsr_os": OSTCConfig(method="lsr_os", alpha=0.5, temperature=4.0),
    "lsr_os_tc": OSTCConfig(method="lsr_os_tc", alpha=0.5, temperature=4.0, correct_prob=0.2),
    "kd": OSTCConfig(method="kd", alpha=0.5, temperature=4.0),
}


def naive_vectorised_kl(z: torch.Tensor, y: torch.Tensor, alpha=0.5, tau=4.0, a=0.2) -> torch.Tensor:
    """LSR-OS-TC with an explicit (B, K) teacher tensor and F.kl_div: the obvious implementation."""
    k = z.shape[1]
    q = torch.full_like(z, (1 - a) / (k - 1)).scatter_(1, y[:, None], a)
    kl = F.kl_div(F.log_softmax(z / tau, 1), q, reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(z, y) + alpha * tau**2 * kl


def tfkd_reference_loop(z: torch.Tensor, y: torch.Tensor, alpha=0.95, T=40.0, multiplier=1.0) -> torch.Tensor:
    """Tf-KD_reg as its reference code computes it (loop over the batch to fill the teacher)."""
    k = z.shape[1]
    teacher = torch.ones_like(z) * 0.01 / (k - 1)
    for i in range(z.shape[0]):
        teacher[i, y[i]] = 0.99
    soft = torch.nn.KLDivLoss()(F.log_softmax(z, 1), F.softmax(teacher / T, 1)) * multiplier
    return (1 - alpha) * F.cross_entropy(z, y) + alpha * soft


def time_fwd_bwd(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, min_run_time: float) -> float:
    """Median seconds of one forward+backward."""
    leaf = z.detach().clone().requires_grad_(True)

    def step():
        leaf.grad = None
        fn(leaf).backward()

    for _ in range(3):
        step()
    timer = benchmark.Timer(stmt="step()", globals={"step": step})
    return timer.blocked_autorange(min_run_time=min_run_time).median


def bench_loss(device: str, batch: int, classes: list[int], min_run_time: float) -> str:
    lines = [
        f"device: {torch.cuda.get_device_name() if device == 'cuda' else platform.processor() or 'cpu'} "
        f"({device}), torch {torch.__version__}, threads {torch.get_num_threads()}, B={batch}, float32",
        "",
        "| K | " + " | ".join(["cross_entropy", *CONFIGS, "naive KL", "Tf-KD ref loop"]) + " |",
        "|---" * (len(CONFIGS) + 4) + "|",
    ]
    for k in classes:
        g = torch.Generator().manual_seed(0)
        z = torch.randn(batch, k, generator=g).to(device)
        y = torch.randint(0, k, (batch,), generator=g).to(device)
        t = torch.randn(batch, k, generator=g).to(device)
        fns = {"cross_entropy": lambda x: F.cross_entropy(x, y)}
        for name, cfg in CONFIGS.items():
            loss = OSTCLoss(cfg)
            fns[name] = (lambda x, loss=loss: loss(x, y, teacher_logits=t)) if name == "kd" else (
                lambda x, loss=loss: loss(x, y)
            )
        fns["naive KL"] = lambda x: naive_vectorised_kl(x, y)
        fns["Tf-KD ref loop"] = lambda x: tfkd_reference_loop(x, y)
        times = {name: time_fwd_bwd(fn, z, min_run_time) for name, fn in fns.items()}
        base = times["cross_entropy"]
        cells = [f"{base * 1e6:.0f} µs"] + [f"{times[n] / base:.2f}×" for n in list(fns)[1:]]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("cross_entropy: median forward+backward time; other columns: time ÷ cross_entropy's time.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_loss = sub.add_parser("loss", help="forward+backward time of each method vs F.cross_entropy")
    p_loss.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p_loss.add_argument("--batch", type=int, default=128)
    p_loss.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    p_loss.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timing per cell")
    args = parser.parse_args(argv)
    if args.command == "loss":
        print(bench_loss(args.device, args.batch, args.classes, args.min_run_time))


if __name__ == "__main__":
    sys.exit(main())
