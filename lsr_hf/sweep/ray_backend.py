"""The Ray backend of ``run_sweep``: every unfinished run of a sweep becomes one Ray task calling
:func:`lsr_hf.job.train.run` with its recipe, on a worker holding the CPUs and GPUs it asked for.

Without an address Ray starts a local instance (this machine, all its CPUs and GPUs; it is shut down at the end);
with one (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``) the runs spread over that cluster. When Ray is already
initialised in this process (``ray.init`` called by the user), that instance is used and left running.

A run that holds a GPU gets a fresh worker process (``max_calls=1``, Ray's default for GPU tasks: its GPU memory
goes back when it ends; CPU-only runs may share a worker, one after the other, like the in-process backend), runs in
the working directory of the process that runs the sweep (so relative recipe, data and output paths mean
the same as in-process; on a cluster that directory must exist on every node, i.e. a shared filesystem), and writes
its output, Python's and the libraries' alike, to ``<run folder>/train.log`` (appended, one header line per
attempt). Ray does not retry a run (``max_retries=0``): a failed or crashed run is reported and the command run
again retries it, resuming from its checkpoint when it has one. ``ray`` is imported only here, and only when a
sweep asks for this backend.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import socket
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsr_hf.sweep.common import SweepError
from lsr_hf.sweep.execute import error_line, train_planned
from lsr_hf.sweep.plan import PlannedRun

if TYPE_CHECKING:
    from lsr_hf.sweep.execute import SweepProgress

LOG_FILE = "train.log"  # in each run's folder
MISSING_RAY = "the Ray backend needs ray: pip install 'lsr-hf[ray]' (or pip install ray)"


@dataclass(frozen=True)
class RayOptions:
    """Where the runs go and what each one holds.

    Attributes:
        address: a running Ray cluster (``"auto"``, ``"ray://head:10001"``, ``"head:6379"``); ``None`` starts a
            local instance on this machine.
        gpus_per_run: GPUs reserved for each run (Ray sets ``CUDA_VISIBLE_DEVICES`` to them; fractions share a
            GPU). ``None``: 1 when the cluster has a GPU, else 0.
        cpus_per_run: CPUs reserved for each run (Ray also sets the run's ``OMP_NUM_THREADS`` to it); count the
            recipe's ``training.dataloader_num_workers`` in.
    """

    address: str | None = None
    gpus_per_run: float | None = None
    cpus_per_run: float = 1.0

    def __post_init__(self) -> None:
        if self.gpus_per_run is not None and not (math.isfinite(self.gpus_per_run) and self.gpus_per_run >= 0):
            raise ValueError(f"gpus_per_run must be a number >= 0, got {self.gpus_per_run!r}")
        if not (math.isfinite(self.cpus_per_run) and self.cpus_per_run > 0):
            raise ValueError(f"cpus_per_run must be a number > 0, got {self.cpus_per_run!r}")


def import_ray() -> Any:
    """``import ray``, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(MISSING_RAY) from err
    return ray


def run_on_ray(
    pending: Sequence[PlannedRun], options: RayOptions, callbacks: Sequence[Any], progress: SweepProgress
) -> None:
    """Submits every pending run as a Ray task, then reports each as it finishes or fails (``progress``).

    Raises :class:`SweepError`, before anything runs, when a local instance cannot hold one run
    (``gpus_per_run``/``cpus_per_run`` above what this machine has). On an interrupt the unfinished tasks are
    cancelled.
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if options.address is None:
            ray.init(include_dashboard=False)
        else:
            ray.init(address=options.address)
    waiting: dict[Any, PlannedRun] = {}
    try:
        gpus, capacity = _resources(ray, options, local=started_here and options.address is None, echo=progress.echo)
        task = ray.remote(  # a GPU run gets a fresh worker (its GPU memory goes back when it ends), as Ray's own default
            num_cpus=options.cpus_per_run, num_gpus=gpus, max_calls=1 if gpus > 0 else 0, max_retries=0
        )(_train_in_worker)
        workdir = os.getcwd()
        for planned in pending:
            planned.log_path = planned.output_dir / LOG_FILE
            ref = task.remote(planned, str(planned.log_path), workdir, callbacks)
            waiting[ref] = planned
        progress.echo(
            f"submitted {len(pending)} runs to Ray ({options.cpus_per_run:g} CPU, {gpus:g} GPU each; "
            f"{capacity() or 'none'} at a time now); each writes <run folder>/{LOG_FILE}"
        )
        while waiting:
            progress.running = min(len(waiting), capacity())
            ready, _ = ray.wait(list(waiting), num_returns=1)
            for ref in ready:
                planned = waiting.pop(ref)
                progress.running = min(len(waiting), capacity())
                try:
                    results = ray.get(ref)
                except ray.exceptions.RayTaskError as err:  # the run raised: the cause is its exception
                    progress.failed_run(planned, error_line(getattr(err, "cause", None) or err), planned.log_path)
                except ray.exceptions.RayError as err:  # the worker died (out of memory, a crash, a lost node)
                    progress.failed_run(planned, error_line(err), planned.log_path)
                else:
                    progress.finished(planned, results)
    except BaseException:
        for ref in waiting:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


def _resources(ray: Any, options: RayOptions, local: bool, echo: Any) -> tuple[float, Any]:
    """(GPUs per run, a function giving how many runs fit in the cluster now)."""
    total = ray.cluster_resources()
    gpus = options.gpus_per_run if options.gpus_per_run is not None else (1.0 if total.get("GPU", 0) >= 1 else 0.0)
    for name, need in (("CPU", options.cpus_per_run), ("GPU", gpus)):
        have = total.get(name, 0)
        if need > have:
            flag = f"--{name.lower()}s-per-run"
            message = f"{flag} {need:g}: the Ray cluster has {have:g} {name}(s)"
            if local:
                hint = " (use --gpus-per-run 0 to train on CPUs)" if name == "GPU" else ""
                raise SweepError(f"{message}; no run could start{hint}")
            echo(f"warning: {message} now; the runs wait until nodes with enough are added")

    def capacity() -> int:
        now = ray.cluster_resources()
        fits = [now.get("CPU", 0) / options.cpus_per_run]
        if gpus > 0:
            fits.append(now.get("GPU", 0) / gpus)
        return int(min(fits) + 1e-9)

    return gpus, capacity


def _train_in_worker(planned: PlannedRun, log_path: str, workdir: str, callbacks: Sequence[Any]) -> dict[str, Any]:
    """One run, in a Ray worker: in ``workdir``, with the output (file descriptors 1 and 2) appended to
    ``log_path``, :func:`lsr_hf.sweep.execute.train_planned`. A failed run's traceback goes to the log and its exception
    to the caller. The worker's directory and output are restored afterwards (a CPU worker may run further tasks)."""
    if not os.path.isdir(workdir):
        raise RuntimeError(
            f"the sweep's working directory {workdir} does not exist on node {socket.gethostname()}: on a cluster, "
            "the recipes, data and output_dir must be on a filesystem every node mounts at the same path"
        )
    previous_dir = os.getcwd()
    os.chdir(workdir)
    try:
        with _output_to(Path(log_path), planned.status == "resume"):
            try:
                return train_planned(planned, callbacks)
            except BaseException:
                traceback.print_exc()
                raise
    finally:
        os.chdir(previous_dir)


@contextlib.contextmanager
def _output_to(log_path: Path, resume: bool) -> Iterator[None]:
    """Points file descriptors 1 and 2 (Python's and the C libraries' output alike) at ``log_path`` (appended,
    after a header line) for the duration, then back."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", encoding="utf-8") as log:
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        log.write(
            f"=== {stamp} {'resuming' if resume else 'training'} on {socket.gethostname()} (Ray worker pid "
            f"{os.getpid()}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r})\n"
        )
        log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
