"""Divergence: a non-finite or exploding loss stops the run with a message, before anything claims results.

``DivergenceGuard`` is a ``TrainerCallback`` that reads the losses Trainer logs (``loss`` every
``logging_steps``, ``eval_loss`` at each evaluation). Those are already Python floats, gathered by Trainer for its
log, so the guard adds no host-device sync: a step's loss is never read on the step itself. A loss is *diverged* when it is not finite
or when it exceeds ``max_ratio`` (100) times the loss of a model that predicts the uniform distribution (all logits
equal: ``log K`` for cross-entropy; ``uniform_prediction_loss`` for every method). The guard then raises
``TrainingDiverged`` (exit status 3) out of ``Trainer.train``: the model is not saved, no model card or
``results.json`` is written and nothing is pushed. ``DivergenceGuard.check`` applies the same test to the final metrics, for
what fell between two logging steps.

Trainer's ``logging_nan_inf_filter`` (on by default) replaces a non-finite step loss by the running mean in the logs
(and syncs every step to do so); the recipes turn it off so that a NaN shows. With it on, the guard still catches a
diverged run at its next evaluation (``eval_loss``) or in the final metrics.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Mapping
from typing import Any

import torch
from transformers import TrainerCallback, TrainingArguments

from lsr_hf.errors import TrainingDiverged
from lsr_hf.losses import OSTCConfig, OSTCLoss

logger = logging.getLogger(__name__)

MAX_LOSS_RATIO = 100.0


def uniform_prediction_loss(config: OSTCConfig, num_classes: int) -> float:
    """The objective for all-zero logits (p = 1/K for every class; for ``kd`` the teacher predicts the same)."""
    logits = torch.zeros(1, num_classes)
    labels = torch.zeros(1, dtype=torch.long)
    extra = {"teacher_logits": logits} if config.spec.teacher == "logits" else {}
    with torch.no_grad():
        return float(OSTCLoss(config)(logits, labels, **extra))


def diverged_loss(logs: Mapping[str, Any], limit: float) -> tuple[str, float] | None:
    """The first loss in ``logs`` (keys ``loss`` or ``*_loss``) that is not finite or is above ``limit``, or None."""
    for key, value in logs.items():
        if key != "loss" and not key.endswith("_loss"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or value > limit:
                return key, float(value)
    return None


def divergence_message(
    key: str, value: float, step: int, limit: float, reference: float, args: TrainingArguments, output_dir: str
) -> str:
    """What happened (step, loss), the likely cause (learning rate, half precision) and what was kept."""
    if math.isfinite(value):
        what = f"over {limit / reference:g}x {reference:.4g}, the loss of a uniform prediction"
    else:
        what = "not finite"
    causes = [
        f"the learning rate is too high (training.learning_rate={args.learning_rate:g}): lower it, lengthen "
        "training.warmup_steps or clip gradients (training.max_grad_norm)"
    ]
    if args.bf16 or args.fp16:
        flag = "bf16" if args.bf16 else "fp16"
        causes.append(f"half precision overflows (training.{flag}=true): try float32 ({flag}=false)")
    return (
        f"training diverged at step {step}: {key} = {value:.4g} ({what}). Likely cause: "
        + "; or ".join(causes)
        + f". No model, results.json or model card was written to {output_dir!r} and nothing was pushed; "
        "any checkpoints saved before this step were kept (train again with --overwrite, or --resume from the "
        "last one)"
    )


class DivergenceGuard(TrainerCallback):
    """Raises ``TrainingDiverged`` at the first logged loss that is not finite or exceeds ``max_ratio`` times
    ``reference`` (``uniform_prediction_loss``). Every rank logs the same gathered loss, so every rank stops."""

    def __init__(self, reference: float, max_ratio: float = MAX_LOSS_RATIO) -> None:
        if not math.isfinite(reference) or reference <= 0:
            raise ValueError(f"reference must be a finite loss > 0, got {reference!r}")
        self.reference = reference
        self.limit = max_ratio * reference

    def on_log(self, args, state, control, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.check(logs or {}, state.global_step, args)

    def check(self, logs: Mapping[str, Any], step: int, args: TrainingArguments) -> None:
        """Raises ``TrainingDiverged`` if ``logs`` hold a diverged loss (also for the final metrics of a run)."""
        found = diverged_loss(logs, self.limit)
        if found is not None:
            key, value = found
            raise TrainingDiverged(
                divergence_message(key, value, step, self.limit, self.reference, args, str(args.output_dir))
            )


class GracefulInterrupt(TrainerCallback):
    """Ctrl-C (SIGINT) during training stops the run at the end of the current optimizer step with a checkpoint of
    that step, so that ``--resume`` continues exactly where it stopped; a second Ctrl-C stops at once
    (``KeyboardInterrupt``).

    Used as a context manager around ``Trainer.train``: the handler is installed on entry and the previous one put
    back on exit. It is installed only in the main thread of a single-process run (under DDP each rank would see the
    signal at another step); elsewhere Ctrl-C keeps its default behaviour. ``requested`` says whether it fired,
    ``step`` the step whose checkpoint was saved."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested = False
        self.step: int | None = None
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> GracefulInterrupt:
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def restore(self) -> None:
        """Puts the SIGINT handler that was there before back (idempotent)."""
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second Ctrl-C: stop now
            self.restore()
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("Ctrl-C: stopping after this step with a checkpoint (press Ctrl-C again to stop at once)")

    def on_step_end(self, args, state, control, **kwargs: Any) -> None:
        if self.requested and self.step is None:
            self.step = state.global_step
            control.should_save = True
            control.should_training_stop = True
