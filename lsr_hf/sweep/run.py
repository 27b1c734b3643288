"""Running a sweep: plan it (:mod:`lsr_hf.sweep.plan`), then train the unfinished runs one after the other in this
process (the default backend) or side by side as Ray tasks (:mod:`lsr_hf.sweep.ray_backend`), and write the report."""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lsr_hf.sweep.execute import SweepFailure, SweepProgress, error_line, train_planned
from lsr_hf.sweep.plan import PlannedRun, plan_sweep
from lsr_hf.sweep.report import write_report
from lsr_hf.sweep.spec import SweepSpec

if TYPE_CHECKING:
    from lsr_hf.sweep.ray_backend import RayOptions

BACKENDS = ("process", "ray")

__all__ = ["BACKENDS", "PlannedRun", "SweepFailure", "SweepProgress", "plan_sweep", "run_sweep"]


def run_sweep(
    spec: SweepSpec,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    callbacks: Sequence[Any] = (),
    echo: Callable[[str], None] = print,
    report: bool = True,
    backend: str = "process",
    ray_options: RayOptions | None = None,
) -> list[PlannedRun]:
    """Runs a sweep: plans (and validates) every run, trains the unfinished ones, writes the report.

    Args:
        spec: from :func:`load_sweep`.
        output_dir: overrides ``spec.output_dir``.
        dry_run: only print the plan (each run's name and status); nothing is trained or written.
        callbacks: ``TrainerCallback``s passed to every run (with ``backend="ray"`` they are pickled to the workers).
        echo: where progress lines go.
        report: write :func:`write_report` at the end (when at least one run has its results).
        backend: ``"process"`` trains the runs one after the other in this process; ``"ray"`` runs each as a Ray
            task with the resources of ``ray_options`` (:mod:`lsr_hf.sweep.ray_backend`), side by side.
        ray_options: where and how the Ray backend runs (default :class:`RayOptions()`: a local Ray instance).

    Both backends train through :func:`lsr_hf.job.train.run` into the same folders. A run that raises is reported (name,
    error, log) and the other runs go on; once they are done, and the report written, :class:`SweepFailure` is
    raised naming the failed runs. An interrupt (Ctrl-C) stops the sweep at once; finished runs are kept.

    Returns the plan; the ``status`` of each run is what it was before this call ("done" ones were skipped), its
    ``outcome`` what this call did ("skipped", "finished").
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if ray_options is not None and backend != "ray":
        raise ValueError("ray_options needs backend='ray'")
    root = Path(output_dir if output_dir is not None else spec.output_dir)
    runs = plan_sweep(spec, root)
    counts = {s: sum(r.status == s for r in runs) for s in ("done", "resume", "restart", "new")}
    echo(
        f"{spec.path}: {len(runs)} runs in {root} ({counts['done']} done, {counts['resume']} to resume, "
        f"{counts['restart']} to restart, {counts['new']} new)"
    )
    if dry_run:
        for k, planned in enumerate(runs, start=1):
            echo(f"[{k}/{len(runs)}] {planned.status:7s} {planned.name}")
        return runs

    progress = SweepProgress(runs, echo)
    for planned in runs:
        if planned.status == "done":
            planned.outcome = "skipped"
            echo(f"{progress.prefix(planned)}: done, skipped")
    pending = [r for r in runs if r.status != "done"]
    if pending and backend == "ray":
        from lsr_hf.sweep.ray_backend import RayOptions, run_on_ray

        run_on_ray(pending, ray_options or RayOptions(), callbacks, progress)
    elif pending:
        _run_in_process(pending, callbacks, progress)
    if report and progress.done:
        for path in write_report(root):
            echo(f"wrote {path}")
    if progress.failed:
        raise SweepFailure(progress.failure_message(), progress.failed)
    return runs


def _run_in_process(pending: Sequence[PlannedRun], callbacks: Sequence[Any], progress: SweepProgress) -> None:
    """The default backend: one run after the other in this process; a failed run is reported (its traceback
    printed to stderr) and the next one starts."""
    for planned in pending:
        progress.echo(f"{progress.prefix(planned)}: {'resuming' if planned.status == 'resume' else 'training'}")
        progress.running = 1
        try:
            results = train_planned(planned, callbacks)
        except Exception as err:  # noqa: BLE001 - reported, then the next run starts
            traceback.print_exc(file=sys.stderr)
            progress.running = 0
            progress.failed_run(planned, error_line(err), None)
        except BaseException:  # KeyboardInterrupt, SystemExit: stop the sweep
            progress.echo(
                f"{progress.prefix(planned)}: interrupted; the finished runs are kept, run the same command again "
                "to continue"
            )
            raise
        else:
            progress.running = 0
            progress.finished(planned, results)
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
