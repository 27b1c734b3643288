"""Sweep backends (lsr_hf.sweep.ray_backend, scripts/sweep.py run --backend ray): a local Ray instance with 2 CPUs
runs a tiny 4-run sweep two at a time and writes the same results.json metrics as the in-process backend for the same
seeds, skips finished runs, re-runs only a missing result, and reports a failing run (name, error, log) while the
other finishes; the in-process backend reports a failing run the same way. Plus the progress line, the CLI's
options, and that nothing but the Ray backend imports ray. The Ray tests skip when ray is not installed."""

import ast
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from lsr_hf.sweep import PlannedRun, RayOptions, SweepFailure, SweepProgress, load_sweep, run_sweep
from lsr_hf.sweep.ray_backend import LOG_FILE, MISSING_RAY, import_ray
from test_sweep import DEMO_CE, REPO, TINY, load_cli, write_sweep

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'lsr-hf[ray]')"
)
METHODS = ["ce", "lsr_os_tc"]
# model.pretrained=true fails in lsr_hf.job.train.run, not in validation: the Hub is offline and the cache empty
FAILING = {"model.pretrained": [True, False]}


def sweep_file(folder: Path, grids: list, seeds: list) -> Path:
    content = {
        "recipe": str(DEMO_CE),
        "output_dir": str(folder / "out"),
        "seeds": seeds,
        "set": [*TINY, "model.name=resnet10t"],
        "grids": grids,
    }
    return write_sweep(folder, content)


def timing_free(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith(("_runtime", "_per_second")) and "seconds" not in k}


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    env = {  # workers inherit this process's environment; made explicit for the package path and the offline Hub
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        **{k: os.environ[k] for k in ("HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if k in os.environ},
    }
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_sweep(local_ray, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray_sweep")
    path = sweep_file(tmp, [{"loss.method": METHODS}], seeds=[0, 1])
    lines: list[str] = []
    runs = run_sweep(load_sweep(path), backend="ray", ray_options=RayOptions(cpus_per_run=1), echo=lines.append)
    return path, tmp / "out", runs, lines


@needs_ray
def test_ray_runs_two_at_a_time_into_the_same_folders_with_the_same_metrics_as_in_process(ray_sweep, tmp_path):
    path, out, runs, lines = ray_sweep
    names = [f"loss.method={m},seed={s}" for s in (0, 1) for m in METHODS]
    assert [r.name for r in runs] == names and {r.outcome for r in runs} == {"finished"}
    assert "submitted 4 runs to Ray (1 CPU, 0 GPU each; 2 at a time now); each writes <run folder>/train.log" in lines
    finished = [line for line in lines if " | " in line]
    assert len(finished) == 4 and finished[-1].endswith("4 done, 0 running, 0 failed, 0 left, " +
                                                         finished[-1].split(", ")[-2] + ", nothing left")
    for k, name in enumerate(names, start=1):
        accuracy = results(out / name)["metrics"]["test_accuracy"]
        assert any(line.startswith(f"[{k}/4] {name}: test accuracy {accuracy:.4f}") for line in finished)
        log = (out / name / LOG_FILE).read_text()
        assert log.startswith("=== ") and "training on" in log and "'loss'" in log  # the Trainer's own log lines
        assert "Writing model shards" not in log  # disable_tqdm silences the save's progress bar as well
    assert (out / "results.md").is_file()

    # the in-process backend, same sweep, same seeds; a Ray worker with 1 CPU runs torch on 1 thread (Ray sets
    # OMP_NUM_THREADS), and float sums depend on the thread count, so this process does the same
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = run_sweep(load_sweep(path), output_dir=tmp_path / "local", echo=lambda line: None, report=False)
    finally:
        torch.set_num_threads(threads)
    assert [r.name for r in local] == names
    for name in names:
        on_ray, here = results(out / name), results(tmp_path / "local" / name)
        assert on_ray["seed"] == here["seed"] and on_ray["metrics"]["train_loss"] > 0
        assert timing_free(on_ray["metrics"]) == timing_free(here["metrics"])  # bit for bit
        on_ray["recipe"]["training"].pop("output_dir"), here["recipe"]["training"].pop("output_dir")
        assert on_ray["recipe"] == here["recipe"]


@needs_ray
def test_ray_skips_finished_runs_and_reruns_only_a_missing_result(ray_sweep):
    path, out, runs, _ = ray_sweep
    logs_before = {r.name: (out / r.name / LOG_FILE).read_text() for r in runs}
    lines: list[str] = []
    again = run_sweep(load_sweep(path), backend="ray", echo=lines.append, report=False)
    assert [r.status for r in again] == ["done"] * 4 and {r.outcome for r in again} == {"skipped"}
    assert lines[0].endswith("(4 done, 0 to resume, 0 to restart, 0 new)")
    assert {r.name: (out / r.name / LOG_FILE).read_text() for r in runs} == logs_before  # nothing was started

    kept = out / runs[0].name / "results.json"
    kept_before = kept.read_bytes(), kept.stat().st_mtime_ns
    deleted = out / runs[3].name / "results.json"
    first = results(out / runs[3].name)["metrics"]
    deleted.unlink()
    again = run_sweep(load_sweep(path), backend="ray", echo=lambda line: None, report=False)
    assert [r.outcome for r in again] == ["skipped", "skipped", "skipped", "finished"]
    assert [r.status for r in again] == ["done", "done", "done", "restart"]
    assert (kept.read_bytes(), kept.stat().st_mtime_ns) == kept_before
    assert timing_free(results(out / runs[3].name)["metrics"]) == timing_free(first)
    log = (out / runs[3].name / LOG_FILE).read_text()
    assert log.startswith(logs_before[runs[3].name]) and log.count("\n=== ") == 1  # appended, one header per attempt


def check_failure_report(out: Path, lines: list[str], failure: SweepFailure, log_path: Path | None) -> None:
    bad, good = "model.pretrained=true,seed=0", "model.pretrained=false,seed=0"
    (failed,) = failure.value.failed
    assert failed.name == bad and failed.outcome == "failed" and failed.log_path == log_path
    assert failed.error.startswith("LocalEntryNotFoundError: ")  # the Hub is offline in the tests
    assert str(failure.value).startswith("1 of 2 runs failed") and f"  {bad}: {failed.error}" in str(failure.value)
    (line,) = [line for line in lines if line.startswith(f"[1/2] {bad}: FAILED: {failed.error}")]
    where = f"log: {log_path}" if log_path else "traceback above"
    assert f"({where}) | " in line
    assert not (out / bad / "results.json").exists()
    assert results(out / good)["metrics"]["test_accuracy"] >= 0  # the other run finished after the failed one
    assert any(line.startswith(f"[2/2] {good}: test accuracy ") and "1 done, 0 running, 1 failed, 0 left" in line
               for line in lines)
    assert (out / "results.md").is_file()  # the report of the finished runs


@needs_ray
def test_ray_reports_a_failing_run_with_its_log_while_the_other_finishes(local_ray, tmp_path):
    path = sweep_file(tmp_path, [FAILING], seeds=[0])
    lines: list[str] = []
    with pytest.raises(SweepFailure) as failure:
        run_sweep(load_sweep(path), backend="ray", echo=lines.append)
    log_path = tmp_path / "out" / "model.pretrained=true,seed=0" / LOG_FILE
    check_failure_report(tmp_path / "out", lines, failure, log_path)
    log = log_path.read_text()
    assert "Traceback (most recent call last)" in log and "LocalEntryNotFoundError" in log


def test_in_process_reports_a_failing_run_and_goes_on_like_ray(tmp_path, capsys):
    path = sweep_file(tmp_path, [FAILING], seeds=[0])
    lines: list[str] = []
    with pytest.raises(SweepFailure) as failure:
        run_sweep(load_sweep(path), echo=lines.append)
    check_failure_report(tmp_path / "out", lines, failure, None)
    assert "LocalEntryNotFoundError" in capsys.readouterr().err  # the traceback


def test_progress_line_counts_every_run_and_estimates_from_throughput(tmp_path):
    runs = [PlannedRun(f"r{k}", {}, 0, tmp_path / f"r{k}", recipe=None) for k in range(5)]
    runs[0].status = "done"
    now = [100.0]  # a fake clock
    lines: list[str] = []
    progress = SweepProgress(runs, lines.append, clock=lambda: now[0])
    progress.running = 2  # 4 to train, 2 at a time
    now[0] = 130.0
    progress.failed_run(runs[2], "ValueError: bad", tmp_path / "r2" / "train.log")
    assert lines[-1] == (f"[3/5] r2: FAILED: ValueError: bad (log: {tmp_path / 'r2' / 'train.log'}) | "
                         "1 done, 2 running, 1 failed, 1 left, 30s elapsed, no estimate before a run finishes")
    now[0] = 160.0
    progress.running = 2
    progress.finished(runs[1], {"metrics": {"test_accuracy": 0.5, "eval_accuracy": 0.25}, "wall_seconds": 59.6})
    # one run finished in the 60 s since the start, two still running: 60 s / 1 × 2
    assert lines[-1] == ("[2/5] r1: test accuracy 0.5000, val accuracy 0.2500 in 60 s | "
                         "2 done, 2 running, 1 failed, 0 left, 1m00s elapsed, about 2m00s to go")
    assert runs[2].outcome == "failed" and runs[1].outcome == "finished" and progress.failed == [runs[2]]


def test_cli_refuses_bad_ray_options_before_anything_runs(tmp_path, monkeypatch, capsys):
    path = sweep_file(tmp_path, [{"loss.method": ["ce"]}], seeds=[0])
    cli = load_cli()
    for argv, message in [
        (["--backend", "ray", "--gpus-per-run", "-1"], "--gpus-per-run: expected a number >= 0, got '-1'"),
        (["--backend", "ray", "--cpus-per-run", "0"], "--cpus-per-run: expected a number > 0, got '0'"),
        (["--address", "auto"], "--address, --gpus-per-run and --cpus-per-run need --backend ray"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["run", str(path), *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real_find_spec(name, *a))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(path), "--backend", "ray"])
    assert exit_info.value.code == 2 and MISSING_RAY in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_ray_is_a_clear_error_and_only_the_ray_backend_imports_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is not installed
    with pytest.raises(ImportError, match=r"pip install 'lsr-hf\[ray\]'"):
        import_ray()
    # `import ray` appears once in the package and scripts: inside a function of the Ray backend
    places = []
    for path in sorted([*(REPO / "lsr_hf").rglob("*.py"), *(REPO / "scripts").glob("*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(inner) for f in functions for inner in ast.walk(f)}
        for node in ast.walk(tree):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(name == "ray" or name.startswith("ray.") for name in imported):
                places.append((path.relative_to(REPO).as_posix(), id(node) in inside))
    assert places == [("lsr_hf/sweep/ray_backend.py", True)]


def test_ray_options_are_checked():
    with pytest.raises(ValueError, match="gpus_per_run must be a number >= 0"):
        RayOptions(gpus_per_run=-0.5)
    with pytest.raises(ValueError, match="cpus_per_run must be a number > 0"):
        RayOptions(cpus_per_run=0)
    with pytest.raises(ValueError, match="backend must be one of process, ray"):
        run_sweep(None, backend="slurm")
