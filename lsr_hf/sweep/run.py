"""Planning a sweep (one folder per run, recipes checked first) and running it through ``lsr_hf.train.run``:
one run after the other in this process (the default backend) or side by side as Ray tasks (``ray_backend``)."""

from __future__ import annotations

import gc
import itertools
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lsr_hf.recipe import Recipe, RecipeError, load_recipe
from lsr_hf.sweep.common import SweepError, recipe_identity, recipe_view
from lsr_hf.sweep.report import write_report
from lsr_hf.sweep.spec import SweepSpec, expand_grids, run_name, yaml_text
from lsr_hf.train import RESULTS_FILE

if TYPE_CHECKING:
    from lsr_hf.sweep.ray_backend import RayOptions

BACKENDS = ("process", "ray")


@dataclass
class PlannedRun:
    """One run of a sweep: its grid overrides, seed, folder and validated recipe."""

    name: str
    overrides: dict[str, Any]
    seed: int
    output_dir: Path
    recipe: Recipe
    fold: int | None = None  # k-fold sweeps: the fold that is this run's test split
    status: str = "new"  # "done" (results.json exists), "resume" (has a checkpoint), "restart" (folder, no results)
    outcome: str = ""  # set by run_sweep: "skipped" (was done), "finished", "failed"
    error: str | None = None  # a failed run: "ExceptionType: message"
    log_path: Path | None = None  # where the run's output went (the Ray backend: <output_dir>/train.log)
    command: str | None = None  # the scripts/train.py command that trains this run alone (written to its results.json)


def plan_sweep(spec: SweepSpec, output_dir: str | os.PathLike[str] | None = None) -> list[PlannedRun]:
    """Expands the grids over the seeds (and folds), loads and checks every run's recipe and finds each run's status.

    Nothing is trained or written. Raises :class:`SweepError` listing every invalid run (identical messages
    grouped), when two different runs would share a folder, or when a finished run's ``results.json`` was made
    from a different recipe than the one planned now (a changed base recipe or ``set:``).
    """
    from lsr_hf.data import get_spec

    root = Path(output_dir if output_dir is not None else spec.output_dir)
    errors: dict[str, list[str]] = {}
    runs: list[PlannedRun] = []
    seen_recipes: set[str] = set()
    names: dict[str, str] = {}
    configs = expand_grids(spec.grids)
    folds: Sequence[int | None] = range(spec.folds) if spec.folds is not None else (None,)
    # seed-major, then fold: a stopped sweep has whole seeds (all folds) of the grid done, not a few configurations
    for seed, fold, config in itertools.product(spec.seeds, folds, configs):
        name = run_name(config, seed, fold)
        folder = root / name
        fold_overrides = [f"data.num_folds={spec.folds}", f"data.fold={fold}"] if fold is not None else []
        overrides = [
            *spec.set,
            *(f"{key}={yaml_text(value)}" for key, value in config.items()),
            *fold_overrides,
            f"training.seed={seed}",
            f"training.output_dir={json.dumps(str(folder))}",
        ]
        try:
            recipe = load_recipe(spec.recipe, overrides)
        except RecipeError as err:
            errors.setdefault(str(err).replace("(from --set)", "(from the sweep)"), []).append(name)
            continue
        try:  # what lsr_hf.train.run checks first, before loading data (a dataset without a spec: once loaded)
            if recipe.data.builtin:
                recipe.loss.check_num_classes(get_spec(recipe.data.name).num_classes)
        except ValueError as err:
            errors.setdefault(f"{spec.recipe}: loss.{err}", []).append(name)
            continue
        identity = recipe_identity(recipe.to_dict(), drop=("training.output_dir",))
        if identity in seen_recipes:  # same resolved recipe as an earlier run (e.g. a grid repeating a default)
            continue
        seen_recipes.add(identity)
        if name in names and names[name] != identity:
            raise SweepError(f"{spec.path}: two different runs map to the folder {name!r}; rename a grid value")
        names[name] = identity
        command = shlex.join(["python", "scripts/train.py", "--recipe", spec.recipe, *_set_flags(overrides)])
        runs.append(
            PlannedRun(
                name=name,
                overrides=dict(config),
                seed=seed,
                output_dir=folder,
                recipe=recipe,
                fold=fold,
                command=command,
            )
        )
    if errors:
        lines = [f"{spec.path}: {sum(map(len, errors.values()))} run(s) have an invalid recipe:"]
        for message, failed in errors.items():
            lines.append(f"  {message}  [{len(failed)} run(s), e.g. {failed[0]}]")
        raise SweepError("\n".join(lines))
    for planned in runs:
        planned.status = _status(planned)
    return runs


def _set_flags(overrides: Sequence[str]) -> list[str]:
    """``--set key=value`` for each override, in order (the command line that resolves the same recipe)."""
    return [part for override in overrides for part in ("--set", override)]


def _status(planned: PlannedRun) -> str:
    results_path = planned.output_dir / RESULTS_FILE
    if results_path.is_file():
        try:
            stored = json.loads(results_path.read_text(encoding="utf-8")).get("recipe")
        except (json.JSONDecodeError, AttributeError):
            return "restart"  # an unreadable results file: the run did not finish cleanly
        # the folder itself may have moved (another --output-dir): compare everything else
        was = recipe_view(stored if isinstance(stored, dict) else {}, drop=("training.output_dir",))
        now = recipe_view(planned.recipe.to_dict(), drop=("training.output_dir",))
        # keys only one side has are fields another lsr-hf version added or removed: not compared
        changed = sorted(k for k in was.keys() & now.keys() if was[k] != now[k])
        if changed:
            raise SweepError(
                f"{results_path} was made from a different recipe than the one planned now (differs in "
                f"{', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}: was the base recipe or set: "
                "changed?); delete that folder or use another output_dir"
            )
        return "done"
    if planned.output_dir.is_dir():
        from transformers.trainer_utils import get_last_checkpoint

        return "resume" if get_last_checkpoint(str(planned.output_dir)) is not None else "restart"
    return "new"


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

    Both backends train through :func:`lsr_hf.train.run` into the same folders. A run that raises is reported (name,
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


def train_planned(planned: PlannedRun, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Trains one planned run through :func:`lsr_hf.train.run` (resuming when its status says so; ``overwrite``:
    a restarted run replaces what its unfinished attempt left, and the Ray backend's ``train.log`` may already be
    in the folder): what both backends call, the Ray backend inside its worker."""
    from lsr_hf.train import run as train_run

    return train_run(
        planned.recipe,
        resume=planned.status == "resume",
        overwrite=True,
        callbacks=callbacks,
        command=planned.command,
    )


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
