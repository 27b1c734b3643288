"""``EpochTimer``: how long one training epoch takes, for the cost column of the reports (claim 3 of the study)."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from transformers import TrainerCallback


class EpochTimer(TrainerCallback):
    """Measures wall-clock seconds per training epoch in this process.

    Time runs from each epoch's start to its end (``on_epoch_begin`` → ``on_epoch_end``): the steps, plus whatever
    Trainer does inside the epoch, but not the evaluation and checkpoint at the epoch's end, nor data loading before
    training. Each epoch gives seconds per optimizer step; the figure is their median over the epochs timed in this
    process, times the steps of a full epoch:

        seconds_per_epoch = median_e(seconds_e / steps_e) × steps per epoch

    The median keeps the figure of a 15-epoch run when a few of its epochs shared the CPU with another job, and a
    resumed run (only the epochs after the resume are timed, the first possibly partial) stays per epoch.
    """

    def __init__(self) -> None:
        self.epochs: list[tuple[float, int]] = []  # (seconds, optimizer steps) of each timed epoch
        self.steps_per_epoch: int | None = None
        self._epoch_start: tuple[float, int] | None = None

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs: Any) -> None:
        try:
            batches = len(train_dataloader)
        except TypeError:  # no loader, or an iterable one without a length
            return
        self.steps_per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)

    def on_epoch_begin(self, args, state, control, **kwargs: Any) -> None:
        self._epoch_start = (time.perf_counter(), state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs: Any) -> None:
        if self._epoch_start is None:
            return
        started, first_step = self._epoch_start
        steps = state.global_step - first_step
        if steps > 0:
            self.epochs.append((time.perf_counter() - started, steps))
        self._epoch_start = None

    def seconds_per_epoch(self) -> float | None:
        """Seconds per epoch, or None when no step was timed or the epoch length is unknown."""
        if not self.epochs or self.steps_per_epoch is None:
            return None
        return statistics.median(seconds / steps for seconds, steps in self.epochs) * self.steps_per_epoch
