#!/usr/bin/env python
"""Benchmarks (not tests).

    python scripts/bench.py loss [--device cpu|cuda] [--batch 128] [--classes 100 1000]
    python scripts/bench.py train [--batch 128 512] [--images 50000] [--smoke]
    python scripts/bench.py methods [--models resnet10t ...] [--recipe recipes/cifar10_short.yaml] [--rounds 5]

``loss``: forward+backward time of every method of ``OSTCLoss`` next to ``F.cross_entropy``, a naive vectorised
KL (B×K teacher tensor + ``F.kl_div``) and Tf-KD's reference code (a Python loop over the batch builds the teacher),
measured side by side in one run with ``torch.utils.benchmark``; prints a Markdown table of times and ratios to CE.

``train``: images/s of (a) a minimal pure-PyTorch loop with the uint8 dataset resident on the device and crop/flip
done there (the limit), (b) the training job's own trainer (``lsr_hf.job.train.build_trainer`` on a recipe:
``OSTCTrainer``, uint8 batches fetched with one gather, augmentation on the device) on a ``datasets`` dataset of
random 32×32 images with ``ce`` and (c) the same with ``lsr_os_tc`` (``--triton``: with the fused Triton loss);
CIFAR-stem ResNet-18, SGD, bf16 and channels_last on CUDA; prints (b)/(a) and (c)/(b) per batch size.
Audio (GTZAN-shaped: random 30 s clips at 22,050 Hz cut into 3 s segments): segments/s (and clips/s) of (a) a
loop on precomputed log-mel features resident on the device vs (b, c) the job on the GTZAN recipe (raw segments
→ ``AudioCNNForAudioClassification``, log-mel computed in the model, on the device).
``methods`` (claim 3 of the CIFAR-10 study, "no extra training time"): images/s of the training job's own trainer
(as (b) above, the recipe's batch and augmentation) for each of the five methods, per backbone, on random 32×32
images; the methods take turns within each round (the order rotates between rounds, so slow drift of a shared
machine spreads over all of them) and the table gives each method's median over rounds, its ratio to ``ce``
measured side by side, and the seconds an epoch of ``--epoch-images`` images would take at that speed.
``--smoke`` runs tiny sizes on the CPU (CI checks that the script works, not its figures).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils import benchmark

from lsr_hf import OSTCConfig, OSTCLoss
from lsr_hf.losses import METHOD_SPECS
from lsr_hf.fused_loss import triton_available

# every method of the method table but ce (the reference column); a method without settings here runs at its
# OSTCConfig defaults
CONFIG_SETTINGS: dict[str, dict[str, float]] = {
    "lsr": {"alpha": 0.1},
    "tfkd": {"alpha": 0.95, "teacher_temperature": 40.0, "multiplier": 1.0},
    "lsr_os": {"alpha": 0.5, "temperature": 4.0},
    "lsr_os_tc": {"alpha": 0.5, "temperature": 4.0, "correct_prob": 0.2},
    "kd": {"alpha": 0.5, "temperature": 4.0},
}
CONFIGS = {
    name: OSTCConfig(method=name, **CONFIG_SETTINGS.get(name, {}))
    for name, spec in METHOD_SPECS.items()
    if spec.teacher != "none"
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
    """Markdown table: forward+backward time of ``F.cross_entropy`` and, as multiples of it, each method as
    ``OSTCTrainer`` runs it by default (labels checked in the collator: ``check_labels=False``), lsr_os_tc with the
    fused Triton kernel (``use_triton_kernel=True``; CUDA with triton only, else n/a), lsr_os_tc with the per-call
    label check, the naive KL and Tf-KD's reference loop."""
    extra = ["lsr_os_tc triton", "lsr_os_tc + label check", "naive KL", "Tf-KD ref loop"]
    with_triton = device == "cuda" and triton_available()
    lines = [
        f"device: {torch.cuda.get_device_name() if device == 'cuda' else platform.processor() or 'cpu'} "
        f"({device}), torch {torch.__version__}, threads {torch.get_num_threads()}, B={batch}, float32",
        "",
        "| K | " + " | ".join(["cross_entropy", *CONFIGS, *extra]) + " |",
        "|---" * (len(CONFIGS) + len(extra) + 2) + "|",
    ]
    for k in classes:
        g = torch.Generator().manual_seed(0)
        z = torch.randn(batch, k, generator=g).to(device)
        y = torch.randint(0, k, (batch,), generator=g).to(device)
        t = torch.randn(batch, k, generator=g).to(device)
        fns = {"cross_entropy": lambda x: F.cross_entropy(x, y)}
        for name, cfg in CONFIGS.items():
            loss = OSTCLoss(cfg, check_labels=False)
            fns[name] = (lambda x, loss=loss: loss(x, y, teacher_logits=t)) if cfg.spec.teacher == "logits" else (
                lambda x, loss=loss: loss(x, y)
            )
        if with_triton:
            fused = OSTCLoss(replace(CONFIGS["lsr_os_tc"], use_triton_kernel=True), check_labels=False)
            fns["lsr_os_tc triton"] = lambda x: fused(x, y)
        checked = OSTCLoss(CONFIGS["lsr_os_tc"])
        fns["lsr_os_tc + label check"] = lambda x: checked(x, y)
        fns["naive KL"] = lambda x: naive_vectorised_kl(x, y)
        fns["Tf-KD ref loop"] = lambda x: tfkd_reference_loop(x, y)
        times = {name: time_fwd_bwd(fn, z, min_run_time) for name, fn in fns.items()}
        base = times["cross_entropy"]
        names = [*CONFIGS, *extra]
        cells = [f"{base * 1e6:.0f} µs"] + [f"{times[n] / base:.2f}×" if n in times else "n/a" for n in names]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("cross_entropy: median forward+backward time; other columns: time ÷ cross_entropy's time.")
    return "\n".join(lines)


def random_image_dataset(num_images: int, num_classes: int, seed: int = 0):
    """A ``datasets`` dataset of random 32×32 RGB images in the CIFAR layout (``image`` + ``labels``)."""
    from datasets import Dataset, Features, Image, Value

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, num_images)
    features = Features({"image": Image(), "labels": Value("int64")})
    return Dataset.from_dict({"image": list(images), "labels": labels.tolist()}, features=features)


def _timed_loop(model, inputs_fn, labels, batch, steps, warmup, device, optimizer) -> float:
    """Samples/s of a minimal training loop (bf16 autocast on CUDA) over data resident on the device: each step
    draws ``batch`` random indices and trains on ``inputs_fn(indices)``; ``steps`` timed after ``warmup``."""
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        idx = torch.randint(0, labels.shape[0], (batch,), device=device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = F.cross_entropy(model(inputs_fn(idx)), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def limit_loop(model_name, images, labels, batch, steps, warmup, device, num_classes) -> float:
    """(a) Images/s with uint8 images resident on the device, crop/flip done there, channels_last, SGD."""
    import timm

    import lsr_hf.models  # noqa: F401  (registers the cifar_* models with timm)
    from lsr_hf.data.image import ImageBatchTransform

    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=num_classes).to(device, memory_format=torch.channels_last)
    augment = ImageBatchTransform(train=True, mean=(0.5,) * 3, std=(0.25,) * 3)
    images, labels = images.to(device), labels.to(device)

    def inputs(idx):
        return augment.transform(images[idx]).contiguous(memory_format=torch.channels_last)

    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    return _timed_loop(model, inputs, labels, batch, steps, warmup, device, sgd)


def job_speed(recipe_path: str, overrides: list[str], make_data, batch, steps, warmup, device) -> float:
    """Samples/s of the training job's own trainer (``lsr_hf.job.train.build_trainer``: OSTCTrainer, the recipe's
    collators, device transforms, optimizer and TrainingArguments) for ``recipe_path`` with ``overrides``;
    steps ``warmup`` .. ``warmup + steps`` timed."""
    import tempfile

    from transformers import TrainerCallback

    from lsr_hf.recipe import load_recipe
    from lsr_hf.job.train import build_trainer

    class Clock(TrainerCallback):
        start = end = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup, warmup + steps):
                _sync(device)
                setattr(self, "start" if state.global_step == warmup else "end", time.perf_counter())

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        settings = [
            f"training.output_dir={out}", f"training.per_device_train_batch_size={batch}",
            f"training.max_steps={warmup + steps}", "training.eval_strategy='no'", "training.save_strategy='no'",
            "training.report_to=none", "training.logging_steps=1000000", "training.disable_tqdm=true",
            *(["training.bf16=true"] if device == "cuda" else ["training.use_cpu=true"]), *overrides,
        ]  # fmt: skip
        recipe = load_recipe(recipe_path, settings)
        torch.manual_seed(0)
        with contextlib.redirect_stdout(sys.stderr):  # Trainer's log lines; stdout keeps the tables
            build_trainer(recipe, make_data(recipe.data), callbacks=[clock]).train()
    return steps * batch / (clock.end - clock.start)


def audio_limit_loop(backbone, features, labels, batch, steps, warmup, device) -> float:
    """(a) Segments/s of a minimal loop on precomputed log-mel features resident on the device (channels_last,
    AdamW as in the GTZAN recipes)."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(backbone, in_chans=1, num_classes=int(labels.max()) + 1)
    model = model.to(device, memory_format=torch.channels_last)
    features, labels = features.to(device), labels.to(device)
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    return _timed_loop(model, lambda idx: features[idx], labels, batch, steps, warmup, device, adamw)


def bench_audio(args: argparse.Namespace) -> str:
    from lsr_hf.data.audio import DecodedAudio
    from lsr_hf.data.prepare import audio_data

    sr, seconds, segment = args.sample_rate, args.clip_seconds, args.segment_seconds
    seg_len, num_segments = round(segment * sr), round(seconds / segment)
    g = torch.Generator().manual_seed(0)
    decoded = DecodedAudio(  # what lsr_hf.data.audio.decode_audio gives for these clips (decoding is done once)
        clips=torch.randn(args.clips, num_segments * seg_len, generator=g) * 0.1,
        labels=torch.randint(0, 10, (args.clips,), generator=g),
        lengths=torch.full((args.clips,), num_segments * seg_len),
        num_segments=num_segments,
        segment_length=seg_len,
    )
    num_train = args.clips * num_segments
    triton = f"loss.use_triton_kernel={str(args.triton).lower()}"
    frames = 1 + seg_len // args.hop
    features = torch.randn(num_train, 1, args.n_mels, frames, generator=g)
    seg_labels = torch.randint(0, 10, (num_train,), generator=g)
    overrides = [
        f"model.name={args.audio_backbone}", f"model.n_mels={args.n_mels}", f"model.n_fft={args.n_fft}",
        f"model.hop_length={args.hop}", f"data.sample_rate={sr}", f"data.segment_seconds={segment}",
        f"training.dataloader_num_workers={args.workers}",
    ]  # fmt: skip

    def make_data(cfg):
        return audio_data({"train": decoded, "validation": decoded, "test": decoded}, cfg)

    lines = [
        "",
        f"audio: {args.clips} random {seconds:g} s clips at {sr} Hz → {num_train} segments of {segment:g} s, "
        f"log-mel {args.n_mels}×{frames}, backbone {args.audio_backbone} (1 channel), recipe {args.audio_recipe}, "
        f"{args.workers} DataLoader workers, {triton}",
        "",
        "| batch | (a) features loop seg/s | (b) job ce seg/s | (c) job lsr_os_tc seg/s | (b)/(a) | (c)/(b) "
        "| (b) clips/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in args.audio_batch:
        a = audio_limit_loop(args.audio_backbone, features, seg_labels, batch, args.steps, args.warmup, args.device)
        b, c = (
            job_speed(args.audio_recipe, [*overrides, f"loss.method={m}", triton], make_data, batch, args.steps,
                      args.warmup, args.device)  # fmt: skip
            for m in ("ce", "lsr_os_tc")
        )
        lines.append(f"| {batch} | {a:,.0f} | {b:,.0f} | {c:,.0f} | {b / a:.2f} | {c / b:.2f} | {b / num_segments:,.1f} |")
    return "\n".join(lines)


def bench_train(args: argparse.Namespace) -> str:
    import transformers

    from lsr_hf.data.image import ImageDataset
    from lsr_hf.data.prepare import image_data

    device = args.device
    hf = random_image_dataset(args.images, args.classes)
    dataset = ImageDataset.from_hf(hf, column="image", label_column="labels")
    held_out = ImageDataset(dataset.images[:256], dataset.labels[:256])
    overrides = [f"model.name={args.model}", f"training.dataloader_num_workers={args.workers}"]
    triton = f"loss.use_triton_kernel={str(args.triton).lower()}"

    def make_data(cfg):
        return image_data({"train": dataset, "validation": held_out, "test": held_out}, cfg)

    lines = [
        f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, model {args.model}, {args.images} random 32×32 images "
        f"(a `datasets` Image column), recipe {args.recipe}, {args.steps} timed steps after {args.warmup}, "
        f"{args.workers} DataLoader workers, {triton}",
        "",
        "| batch | (a) limit loop img/s | (b) job ce img/s | (c) job lsr_os_tc img/s | (b)/(a) | (c)/(b) "
        "| (b′) ce + rotation 15° img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in args.batch:
        a = limit_loop(args.model, dataset.images, dataset.labels, batch, args.steps, args.warmup, device, args.classes)
        b, c, rotated = (
            job_speed(args.recipe, [*overrides, f"loss.method={m}", f"data.rotation_degrees={deg}", triton], make_data,
                      batch, args.steps, args.warmup, device)  # fmt: skip
            for m, deg in (("ce", 0), ("lsr_os_tc", 0), ("ce", 15))
        )
        lines.append(f"| {batch} | {a:,.0f} | {b:,.0f} | {c:,.0f} | {b / a:.2f} | {c / b:.2f} | {rotated:,.0f} |")
    return "\n".join(lines)


# Loss settings of the methods timed by `methods`: the CIFAR-10 defaults (docs/RESULTS.md, "Defaults"). The values do
# not change the work done; docs/perf/cpu-2026-12-03/methods.md was measured with τ 8 for lsr_os and lsr_os_tc and
# lsr α 0.1.
BENCH_METHODS = {
    "ce": [],
    "lsr": ["loss.alpha=0.3"],
    "tfkd": ["loss.alpha=0.1", "loss.teacher_temperature=20", "loss.multiplier=100"],
    "lsr_os": ["loss.alpha=0.3", "loss.temperature=2"],
    "lsr_os_tc": ["loss.alpha=0.3", "loss.temperature=2", "loss.correct_prob=0.5"],
}


def bench_methods(args: argparse.Namespace) -> str:
    import statistics

    import transformers

    from lsr_hf.data.image import ImageDataset
    from lsr_hf.data.prepare import image_data
    from lsr_hf.recipe import load_recipe

    hf = random_image_dataset(args.images, 10)
    dataset = ImageDataset.from_hf(hf, column="image", label_column="labels")
    held_out = ImageDataset(dataset.images[:64], dataset.labels[:64])
    batch = load_recipe(args.recipe).training["per_device_train_batch_size"]

    def make_data(cfg):
        return image_data({"train": dataset, "validation": held_out, "test": held_out}, cfg)

    methods = list(BENCH_METHODS)
    lines = [
        f"device: {args.device}, torch {torch.__version__} ({torch.get_num_threads()} threads), transformers "
        f"{transformers.__version__}, recipe {args.recipe} (batch {batch}), {args.images} random 32×32 images, "
        f"{args.steps} timed steps after {args.warmup} per measurement, {args.rounds} rounds (methods in turn, "
        f"order rotating); median images/s per method; s/epoch = {args.epoch_images:,} images / median speed",
        "",
        "| backbone | " + " | ".join(f"{m} img/s" for m in methods) + " | "
        + " | ".join(f"{m} / ce" for m in methods[1:]) + " | " + " | ".join(f"{m} s/epoch" for m in methods) + " |",
        "|---|" + "---|" * (3 * len(methods) - 1),
    ]
    for model in args.models:
        speeds: dict[str, list[float]] = {m: [] for m in methods}
        for round_ in range(args.rounds):
            shift = round_ % len(methods)
            for method in methods[shift:] + methods[:shift]:
                overrides = [f"model.name={model}", f"loss.method={method}", *BENCH_METHODS[method],
                             "training.dataloader_num_workers=0"]  # fmt: skip
                speeds[method].append(job_speed(args.recipe, overrides, make_data, batch, args.steps, args.warmup,
                                                args.device))  # fmt: skip
        median = {m: statistics.median(v) for m, v in speeds.items()}
        lines.append(
            f"| {model} | " + " | ".join(f"{median[m]:,.0f}" for m in methods) + " | "
            + " | ".join(f"{median[m] / median['ce']:.3f}" for m in methods[1:]) + " | "
            + " | ".join(f"{args.epoch_images / median[m]:.1f}" for m in methods) + " |"
        )  # fmt: skip
    return "\n".join(lines)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_loss = sub.add_parser("loss", help="forward+backward time of each method vs F.cross_entropy")
    p_loss.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p_loss.add_argument("--batch", type=int, default=128)
    p_loss.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    p_loss.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timing per cell")
    p_train = sub.add_parser("train", help="training images/s: limit loop vs OSTCTrainer (ce, lsr_os_tc)")
    p_train.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p_train.add_argument("--model", default="cifar_resnet18")
    p_train.add_argument("--batch", type=int, nargs="+", default=[128, 512])
    p_train.add_argument("--images", type=int, default=50_000)
    p_train.add_argument("--classes", type=int, default=100)
    p_train.add_argument("--steps", type=int, default=100, help="timed optimizer steps")
    p_train.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p_train.add_argument("--workers", type=int, default=4, help="DataLoader workers of the job (the recipes' 4)")
    p_train.add_argument("--recipe", default="recipes/cifar100_ostc.yaml", help="recipe of (b) and (c), images")
    p_train.add_argument("--audio-recipe", default="recipes/gtzan_ostc.yaml", help="recipe of (b) and (c), audio")
    p_train.add_argument("--modality", choices=("image", "audio", "both"), default="both")
    p_train.add_argument("--audio-backbone", default="resnet18")
    p_train.add_argument("--audio-batch", type=int, nargs="+", default=[64])
    p_train.add_argument("--clips", type=int, default=200, help="random GTZAN-shaped clips")
    p_train.add_argument("--clip-seconds", type=float, default=30.0)
    p_train.add_argument("--segment-seconds", type=float, default=3.0)
    p_train.add_argument("--sample-rate", type=int, default=22050)
    p_train.add_argument("--n-mels", type=int, default=128)
    p_train.add_argument("--n-fft", type=int, default=2048)
    p_train.add_argument("--hop", type=int, default=512)
    p_train.add_argument("--triton", action="store_true", help="the jobs with loss.use_triton_kernel=true (CUDA)")
    p_train.add_argument("--smoke", action="store_true", help="tiny CPU run: checks the script, not the figures")
    p_methods = sub.add_parser("methods", help="training images/s of each method side by side (claim 3)")
    p_methods.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p_methods.add_argument("--models", nargs="+", default=["resnet10t", "mobilenetv3_small_100", "convnext_atto"])
    p_methods.add_argument("--recipe", default="recipes/cifar10_short.yaml", help="the job's recipe (batch, augmentation)")
    p_methods.add_argument("--images", type=int, default=4096, help="random images in the training set")
    p_methods.add_argument("--steps", type=int, default=30, help="timed optimizer steps per measurement")
    p_methods.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p_methods.add_argument("--rounds", type=int, default=5, help="measurements per method (median taken)")
    p_methods.add_argument("--epoch-images", type=int, default=45_000, help="images of an epoch (CIFAR-10 train)")
    p_methods.add_argument("--smoke", action="store_true", help="tiny CPU run: checks the script, not the figures")
    args = parser.parse_args(argv)
    if args.command == "methods":
        if args.smoke:
            args.device, args.models, args.images, args.steps, args.warmup, args.rounds = "cpu", ["resnet10t"], 64, 2, 1, 2
            args.recipe = "recipes/demo_ce.yaml"
        print(bench_methods(args))
    elif args.command == "loss":
        print(bench_loss(args.device, args.batch, args.classes, args.min_run_time))
    elif args.command == "train":
        if args.smoke:
            args.device, args.model, args.batch, args.images = "cpu", "resnet10t", [8], 64
            args.classes, args.steps, args.warmup, args.workers = 10, 2, 1, 0
            args.audio_backbone, args.audio_batch, args.clips, args.clip_seconds = "resnet10t", [4], 4, 2.0
            args.segment_seconds, args.sample_rate, args.n_mels, args.n_fft, args.hop = 1.0, 8000, 16, 256, 128
        if args.modality in ("image", "both"):
            print(bench_train(args))
        if args.modality in ("audio", "both"):
            print(bench_audio(args))


if __name__ == "__main__":
    sys.exit(main())
