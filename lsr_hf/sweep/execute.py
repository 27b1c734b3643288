"""Executing planned runs, whatever the backend: training one run through :func:`lsr_hf.job.train.run`, the progress
line after each, and the failure that ends a sweep with failed runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsr_hf.sweep.plan import PlannedRun


class SweepFailure(RuntimeError):
    """Raised by :func:`run_sweep` after the other runs finished (and the report was written) when runs failed;
    ``failed`` holds those runs, each with its ``error`` and ``log_path``."""

    def __init__(self, message: str, failed: Sequence[PlannedRun]) -> None:
        super().__init__(message)
        self.failed = list(failed)


class SweepProgress:
    """Counts the runs of one ``run_sweep`` call and prints a line as each run finishes or fails, e.g.::

        [3/8] <name>: test accuracy 0.9250, val accuracy 0.9100 in 12 s | 3 done, 2 running, 0 failed, 3 left,
        1m05s elapsed, about 1m30s to go

    done + running + failed + left = every run of the sweep (runs finished before this call count as done). The
    estimate is the throughput of this call so far, elapsed / runs finished in it × (running + left), so it
    accounts for runs executing side by side; a backend sets ``running`` (how many run now, at most).
    """

    def __init__(
        self,
        runs: Sequence[PlannedRun],
        echo: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = len(runs)
        self.done = sum(r.status == "done" for r in runs)
        self.finished_now = 0
        self.failed: list[PlannedRun] = []
        self.running = 0
        self.echo = echo
        self._clock = clock
        self._started = clock()
        self._index = {id(r): k for k, r in enumerate(runs, start=1)}

    @property
    def left(self) -> int:
        return self.total - self.done - len(self.failed) - self.running

    def prefix(self, planned: PlannedRun) -> str:
        return f"[{self._index[id(planned)]}/{self.total}] {planned.name}"

    def finished(self, planned: PlannedRun, results: dict[str, Any]) -> None:
        """Records a run that wrote its results and prints its line."""
        planned.outcome = "finished"
        self.done += 1
        self.finished_now += 1
        metrics = results["metrics"]
        self.echo(
            f"{self.prefix(planned)}: test accuracy {metrics.get('test_accuracy', float('nan')):.4f}, "
            f"val accuracy {metrics.get('eval_accuracy', float('nan')):.4f} in {results['wall_seconds']:.0f} s"
            f" | {self.counts()}"
        )

    def failed_run(self, planned: PlannedRun, error: str, log_path: Path | None) -> None:
        """Records a run that raised (``error``: one line) and prints its name, error and log."""
        planned.outcome, planned.error, planned.log_path = "failed", error, log_path
        self.failed.append(planned)
        log = f"log: {log_path}" if log_path is not None else "traceback above"
        self.echo(f"{self.prefix(planned)}: FAILED: {error} ({log}) | {self.counts()}")

    def counts(self) -> str:
        elapsed = self._clock() - self._started
        remaining = self.running + self.left
        if not remaining:
            estimate = "nothing left"
        elif self.finished_now:
            estimate = f"about {_duration(elapsed / self.finished_now * remaining)} to go"
        else:
            estimate = "no estimate before a run finishes"
        return (
            f"{self.done} done, {self.running} running, {len(self.failed)} failed, {self.left} left, "
            f"{_duration(elapsed)} elapsed, {estimate}"
        )

    def failure_message(self) -> str:
        lines = [
            f"{len(self.failed)} of {self.total} runs failed (the others are kept; run the same command again to "
            "retry the failed ones):"
        ]
        for planned in self.failed:
            log = f"  [log: {planned.log_path}]" if planned.log_path is not None else ""
            lines.append(f"  {planned.name}: {planned.error}{log}")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def error_line(err: BaseException) -> str:
    """``Type: message`` on one line (the first line of the message)."""
    message = str(err).strip().splitlines()
    return f"{type(err).__name__}: {message[0]}" if message else type(err).__name__


def train_planned(planned: PlannedRun, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Trains one planned run through :func:`lsr_hf.job.train.run` (resuming when its status says so; ``overwrite``:
    a restarted run replaces what its unfinished attempt left, and the Ray backend's ``train.log`` may already be
    in the folder): what both backends call, the Ray backend inside its worker."""
    from lsr_hf.job.train import run as train_run

    return train_run(
        planned.recipe,
        resume=planned.status == "resume",
        overwrite=True,
        callbacks=callbacks,
        command=planned.command,
    )
