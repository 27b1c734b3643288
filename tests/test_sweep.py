"""Sweeps (lsr_hf.sweep, scripts/sweep.py): sweep-file validation, grid expansion, run names, planning, a real
two-run sweep on the demo digits (resume, re-run of a deleted result), and the report from fake results
(mean ± std, selection by validation accuracy, plots); plus metrics.functional.reliability_bins."""

import argparse
import csv
import importlib.util
import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import TrainerCallback

from lsr_hf.metrics.functional import expected_calibration_error, reliability_bins
from lsr_hf.recipe import add_recipe_arguments, load_recipe, recipe_from_args
from lsr_hf.sweep import (
    SweepError,
    collect_runs,
    expand_grids,
    load_sweep,
    plan_sweep,
    run_name,
    run_sweep,
    summarize_runs,
    write_report,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_CE = REPO / "recipes" / "demo_ce.yaml"
TINY = [  # a few seconds per run on a CPU
    "data.max_train_samples=40",
    "data.max_eval_samples=40",
    "training.max_steps=2",
    "training.per_device_train_batch_size=16",
    "training.per_device_eval_batch_size=40",
    "training.save_strategy='no'",
    "training.eval_strategy='no'",
    "training.logging_steps=1",
    "training.use_cpu=true",
    "training.disable_tqdm=true",
    "training.dataloader_num_workers=0",
]


def load_cli():
    spec = importlib.util.spec_from_file_location("sweep_cli", REPO / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_sweep(folder: Path, content: dict, name: str = "sweep.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


# ----------------------------------------------------------------------------------------------------------------
# the sweep file, grids, names


def test_expand_grids_is_a_union_of_cartesian_products_without_duplicates():
    grids = [
        {"model.name": ["a", "b"], "loss.method": ["ce", "lsr"]},
        {"model.name": ["a", "b"], "loss.method": ["lsr_os"], "loss.alpha": [0.1, 0.9]},
        {"loss.method": ["ce"], "model.name": ["b", "c"]},  # (b, ce) repeats the first grid in another key order
    ]
    configs = expand_grids(grids)
    expected = [
        {"model.name": "a", "loss.method": "ce"},
        {"model.name": "a", "loss.method": "lsr"},
        {"model.name": "b", "loss.method": "ce"},
        {"model.name": "b", "loss.method": "lsr"},
        {"model.name": "a", "loss.method": "lsr_os", "loss.alpha": 0.1},
        {"model.name": "a", "loss.method": "lsr_os", "loss.alpha": 0.9},
        {"model.name": "b", "loss.method": "lsr_os", "loss.alpha": 0.1},
        {"model.name": "b", "loss.method": "lsr_os", "loss.alpha": 0.9},
        {"loss.method": "ce", "model.name": "c"},
    ]
    assert configs == expected
    assert expand_grids([]) == [{}]


def test_run_names_are_readable_stable_and_unique():
    overrides = {"loss.alpha": 0.5, "loss.method": "lsr_os", "model.name": "resnet10t", "loss.temperature": 4.0}
    name = run_name(overrides, 2)
    assert name == "model.name=resnet10t,loss.method=lsr_os,loss.alpha=0.5,loss.temperature=4.0,seed=2"
    assert run_name(dict(reversed(list(overrides.items()))), 2) == name  # independent of the file's key order
    assert run_name({}, 0) == "seed=0"
    # a value with unsafe characters is sanitised and the name gets a hash, so "a/b" and "a:b" stay apart
    slash, colon = run_name({"data.path": "a/b"}, 0), run_name({"data.path": "a:b"}, 0)
    assert "/" not in slash and slash.startswith("data.path=a-b,seed=0~") and slash != colon
    assert run_name({"training.eval_strategy": "no"}, 0) != run_name({"training.eval_strategy": False}, 0)
    long = run_name({"data.path": "x" * 400}, 0)
    assert len(long) <= 150 and long == run_name({"data.path": "x" * 400}, 0)


def test_load_sweep_resolves_the_recipe_against_the_sweep_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "r.yaml").write_text(DEMO_CE.read_text().replace("extends: base/demo.yaml", ""))
    path = write_sweep(tmp_path / "sweeps", {"recipe": "../recipes/r.yaml", "seeds": [3, 1]})
    spec = load_sweep(path)
    assert Path(spec.recipe).resolve() == (tmp_path / "recipes" / "r.yaml").resolve()
    assert spec.seeds == (3, 1) and spec.set == () and spec.grids == ()
    assert spec.output_dir == str(Path("outputs") / "sweeps" / "sweep")  # relative to the working directory


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": [0]}, r"unknown key 'seed' \(did you mean seeds\?\)"),
        ({"seeds": []}, r"seeds must be a non-empty list"),
        ({"seeds": [0, True]}, r"every seed must be an integer >= 0, got True"),
        ({"seeds": [1, 1]}, r"lists a seed twice"),
        ({"grids": []}, r"grids must be a non-empty list"),
        ({"grids": [{}]}, r"grids\[0\] must be a non-empty mapping"),
        ({"grids": [{"loss.alpha": []}]}, r"grids\[0\]: loss.alpha must be a non-empty list"),
        ({"grids": [{"loss.alpha": 0.5}]}, r"grids\[0\]: loss.alpha must be a non-empty list of values"),
        ({"grids": [{"loss.alpha": [[0.5]]}]}, r"grid values must be numbers, strings, booleans or null"),
        ({"grids": [{"loss.alpha": [0.5, 0.5]}]}, r"loss.alpha lists 0.5 twice"),
        ({"grids": [{"los.alpha": [0.5]}]}, r"unknown section 'los' \(did you mean loss\?\)"),
        ({"grids": [{"alpha": [0.5]}]}, r"the key must be 'section.name'"),
        ({"grids": [{"training.seed": [1, 2]}]}, r"training.seed is set by the sweep"),
        ({"folds": 1}, r"folds must be an integer >= 2"),
        ({"folds": True}, r"folds must be an integer >= 2"),
        ({"grids": [{"data.fold": [0, 1]}]}, r"data.fold is set by the sweep .*folds: for the folds"),
        ({"set": ["data.num_folds=5"]}, r"data.num_folds is set by the sweep"),
        ({"set": ["training.output_dir=x"]}, r"training.output_dir is set by the sweep"),
        ({"set": "loss.alpha=0.3"}, r"set must be a list"),
        ({"set": ["loss.alpha"]}, r"expected 'section.key=value' strings"),
        ({"set": ["loss.alpha=0.3"], "grids": [{"loss.alpha": [0.5]}]}, r"loss.alpha is also in set:"),
        ({"recipe": "missing.yaml"}, r"recipe: .*missing.yaml not found \(the path is relative to the sweep file\)"),
        ({"recipe": 3}, r"recipe must be the path of a recipe file"),
    ],
)
def test_invalid_sweep_files_are_refused_with_the_key(tmp_path, change, message):
    content = {"recipe": str(DEMO_CE), "seeds": [0], "grids": [{"loss.method": ["ce"]}], **change}
    path = write_sweep(tmp_path, content)
    with pytest.raises(SweepError, match=message) as info:
        load_sweep(path)
    assert str(info.value).startswith(str(path))


def test_every_recipe_is_checked_before_anything_runs(tmp_path):
    grids = [
        {"loss.method": ["lsr_os"], "loss.alpha": [0.5, 2.0]},
        {"loss.method": ["lsr_os_tc"], "loss.correct_prob": [0.05]},
    ]
    content = {"recipe": str(DEMO_CE), "output_dir": str(tmp_path / "out"), "seeds": [0, 1], "grids": grids}
    path = write_sweep(tmp_path, content)
    with pytest.raises(SweepError) as info:
        run_sweep(load_sweep(path), echo=lambda line: None)
    text = str(info.value)
    assert "4 run(s) have an invalid recipe" in text  # alpha=2.0 and correct_prob=0.05 < 1/K, two seeds each
    assert (
        "loss.alpha must be in [0, 1], got 2.0 (from the sweep)  "
        "[2 run(s), e.g. loss.method=lsr_os,loss.alpha=2.0,seed=0]" in text
    )
    assert "loss.correct_prob must be in [1/K, 1) = [0.1, 1) for K = 10 classes, got 0.05 (demo)" in text
    assert "got 0.05 (demo) (from the sweep)  [2 run(s)" in text
    assert not (tmp_path / "out").exists()


def test_plan_drops_runs_with_identical_recipes_and_reads_the_state_of_each_folder(tmp_path):
    base_tau = load_recipe(DEMO_CE).loss.temperature
    grids = [
        {"loss.method": ["ce", "lsr_os"], "loss.alpha": [0.1, 0.5]},  # ce ignores alpha: one ce run, not two
        {"loss.method": ["lsr_os"], "loss.alpha": [0.5], "loss.temperature": [base_tau]},  # the base's τ: a duplicate
    ]
    out = tmp_path / "out"
    spec = load_sweep(write_sweep(tmp_path, {"recipe": str(DEMO_CE), "output_dir": str(out), "grids": grids}))
    runs = plan_sweep(spec)
    assert [r.name for r in runs] == [
        "loss.method=ce,loss.alpha=0.1,seed=0",
        "loss.method=lsr_os,loss.alpha=0.1,seed=0",
        "loss.method=lsr_os,loss.alpha=0.5,seed=0",
    ]
    assert [r.status for r in runs] == ["new"] * 3
    assert runs[1].recipe.training["output_dir"] == str(out / runs[1].name) and runs[1].recipe.training["seed"] == 0
    assert runs[1].recipe.loss.alpha == 0.1 and runs[1].recipe.loss.method == "lsr_os"
    (out / runs[0].name / "checkpoint-7").mkdir(parents=True)
    (out / runs[1].name).mkdir()
    assert [r.status for r in plan_sweep(spec)] == ["resume", "restart", "new"]


def test_a_k_fold_sweep_runs_every_configuration_on_every_fold(tmp_path):
    out = tmp_path / "out"
    content = {"recipe": str(DEMO_CE), "output_dir": str(out), "seeds": [0, 1], "folds": 3,
               "grids": [{"loss.method": ["ce", "lsr"]}]}  # fmt: skip
    runs = plan_sweep(load_sweep(write_sweep(tmp_path, content)))
    assert [r.name for r in runs] == [  # seed-major, then fold
        f"loss.method={method},fold={fold},seed={seed}" for seed in (0, 1) for fold in range(3) for method in ("ce", "lsr")
    ]
    for run in runs:
        assert (run.recipe.data.num_folds, run.recipe.data.fold) == (3, run.fold) and f",fold={run.fold}," in run.name
        assert run.recipe.training["seed"] == run.seed
        assert f"data.fold={run.fold}" in run.command and "data.num_folds=3" in run.command
    assert {r.fold for r in runs} == {0, 1, 2}
    assert run_name({"loss.method": "ce"}, 2) == "loss.method=ce,seed=2"  # no folds: names as before


def test_folds_are_replicates_in_the_report_and_pairs_match_seed_and_fold(tmp_path):
    from lsr_hf.sweep.paired import paired_differences
    from lsr_hf.sweep.results import Replicate

    # ce and lsr, 2 seeds × 2 folds; per (seed, fold) lsr − ce test accuracy: +4, +2, 0, −2 points
    ce = {(0, 0): 0.80, (0, 1): 0.70, (1, 0): 0.82, (1, 1): 0.72}
    lsr = {(0, 0): 0.84, (0, 1): 0.72, (1, 0): 0.82, (1, 1): 0.70}
    for method, values in (("ce", ce), ("lsr", lsr)):
        for (seed, fold), test in values.items():
            name = f"{method},fold={fold},seed={seed}"
            fake_run(tmp_path, name, seed, {"method": method, "alpha": 0.1}, "net",
                     {"eval_accuracy": test, "eval_nll": 0.3, "test_accuracy": test, "test_ece": 0.1, "test_nll": 0.3})
            results = json.loads((tmp_path / name / "results.json").read_text())
            results["recipe"]["data"].update(num_folds=2, fold=fold)
            (tmp_path / name / "results.json").write_text(json.dumps(results))
    configs = summarize_runs(collect_runs(tmp_path))
    assert [(c.method, c.n) for c in configs] == [("ce", 4), ("lsr", 4)]  # folds grouped, not separate settings
    assert configs[0].mean("test_accuracy") == pytest.approx(0.76)
    assert [r.replicate for r in configs[0].runs] == [Replicate(0, 0), Replicate(0, 1), Replicate(1, 0), Replicate(1, 1)]
    (row,) = paired_differences(configs)
    assert row.seeds == (Replicate(0, 0), Replicate(0, 1), Replicate(1, 0), Replicate(1, 1))
    mean, std = row.differences["test_accuracy"]
    assert mean * 100 == pytest.approx(1.0) and std * 100 == pytest.approx(math.sqrt((9 + 1 + 1 + 9) / 3))
    write_report(tmp_path)
    with (tmp_path / "results.csv").open() as handle:
        assert [r["seeds"] for r in csv.DictReader(handle)] == ["0/0 0/1 1/0 1/1"] * 2


def test_k_fold_predictions_are_pooled_per_seed_over_complete_folds(tmp_path):
    from lsr_hf.sweep.folds import pooled_rows

    # 2 classes, clips of 2 identical segments with logits (ln 4, 0) or (0, ln 4): every prediction has confidence
    # 0.8, so the pooled ECE is |0.8 − accuracy| and every vote gives the same clip prediction
    sure = {0: [math.log(4.0), 0.0], 1: [0.0, math.log(4.0)]}
    wrong = {(0, 0): 2, (0, 1): 2, (1, 0): 0, (1, 1): 0, (2, 0): 0}  # (seed, fold) -> wrong clips of 5
    for (seed, fold), n_wrong in wrong.items():
        name = f"lsr,fold={fold},seed={seed}"
        fake_run(tmp_path, name, seed, {"method": "lsr", "alpha": 0.1}, "net",
                 {"eval_accuracy": 0.5, "eval_nll": 0.3, "test_accuracy": 0.5, "test_ece": 0.1, "test_nll": 0.3})
        results = json.loads((tmp_path / name / "results.json").read_text())
        results["recipe"]["data"].update(num_folds=2, fold=fold)
        (tmp_path / name / "results.json").write_text(json.dumps(results))
        labels = np.array([0, 1, 0, 1, 0])
        predicted = np.where(np.arange(5) < n_wrong, 1 - labels, labels)
        segments = np.array([[sure[int(c)]] * 2 for c in predicted], dtype=np.float32)  # (5, 2, 2)
        np.savez(tmp_path / name / "test_predictions.npz", logits=segments.mean(1), labels=labels,
                 segment_logits=segments)  # fmt: skip
    (row,) = pooled_rows(summarize_runs(collect_runs(tmp_path)))
    assert row.seeds == (0, 1) and row.num_examples == 10  # seed 2 has fold 0 only: left out
    accuracies = [0.6, 1.0]  # seed 0: 4 of 10 wrong; seed 1: none
    nll = [-(a * math.log(0.8) + (1 - a) * math.log(0.2)) for a in accuracies]
    for vote in ("logits", "probabilities", "segments"):
        assert row.stats[vote, "accuracy"] == pytest.approx((0.8, math.sqrt(0.08)))
        assert row.stats[vote, "ece"][0] == pytest.approx((0.2 + 0.2) / 2)
        assert row.stats[vote, "nll"][0] == pytest.approx(sum(nll) / 2, rel=1e-5)
    write_report(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "## Pooled over folds (out-of-fold test predictions)" in md
    assert "| net | lsr | α=0.1 | ✓ | 0 1 | 10 | 80.00 ± 28.28 | 20.00 ± 0.00 |" in md


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_sweep_files_plan_and_their_finished_runs_match_their_recipes(path, monkeypatch):
    # plan_sweep refuses a results.json made from a different recipe than the one planned now: a change to a
    # recipe the committed study results were trained with fails here, not in the next session's sweep
    monkeypatch.chdir(REPO)
    runs = plan_sweep(load_sweep(path.relative_to(REPO)))
    assert runs and len({r.output_dir for r in runs}) == len(runs)


# ----------------------------------------------------------------------------------------------------------------
# a real sweep: two tiny runs on the demo digits


class CountTraining(TrainerCallback):
    def __init__(self):
        self.started = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.started.append(args.output_dir)


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    content = {
        "recipe": str(DEMO_CE),
        "output_dir": str(tmp / "out"),
        "seeds": [0, 1],
        "set": [*TINY, "model.name=resnet10t"],
        "grids": [{"loss.method": ["lsr_os_tc"], "loss.correct_prob": [0.3]}],
    }
    path = write_sweep(tmp, content)
    counter, lines = CountTraining(), []
    runs = run_sweep(load_sweep(path), callbacks=[counter], echo=lines.append)
    return path, tmp / "out", runs, counter, lines


def test_sweep_trains_each_run_into_its_folder_and_prints_progress(real_sweep):
    _, out, runs, counter, lines = real_sweep
    names = ["loss.method=lsr_os_tc,loss.correct_prob=0.3,seed=0", "loss.method=lsr_os_tc,loss.correct_prob=0.3,seed=1"]
    assert [r.name for r in runs] == names
    assert counter.started == [str(out / n) for n in names]
    for seed, name in enumerate(names):
        results = json.loads((out / name / "results.json").read_text())
        assert results["seed"] == seed
        assert results["recipe"]["loss"]["correct_prob"] == 0.3 and results["recipe"]["data"]["max_train_samples"] == 40
        assert (out / name / "test_predictions.npz").is_file()
        # the recorded command is scripts/train.py's own, not the sweep's: parsed as train.py parses it, it
        # resolves to this run's recipe (not this process's sys.argv, nor a Ray worker's)
        argv = shlex.split(results["command"])
        assert argv[:2] == ["python", "scripts/train.py"]
        parser = argparse.ArgumentParser()
        add_recipe_arguments(parser)
        assert recipe_from_args(parser.parse_args(argv[2:])).to_dict() == results["recipe"]
        assert results["environment"]["torch_threads"] == torch.get_num_threads()  # trained in this process
        accuracy = results["metrics"]["test_accuracy"]
        assert any(line.startswith(f"[{seed + 1}/2] {name}: test accuracy {accuracy:.4f}") for line in lines)
    assert any(line == f"wrote {out / 'results.md'}" for line in lines)


def test_sweep_report_matches_the_results_files(real_sweep):
    _, out, *_ = real_sweep
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    metrics = [json.loads((folder / "results.json").read_text())["metrics"] for folder in folders]
    with (out / "results.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["method"] == "lsr_os_tc" and row["backbone"] == "resnet10t" and row["n"] == "2"
    assert row["seeds"] == "0 1" and row["selected"] == "True"
    assert row["runs"] == ";".join(folder.name for folder in folders)
    pairs = [("test_accuracy", "test_accuracy"), ("test_ece", "test_ece"), ("val_accuracy", "eval_accuracy")]
    for column, key in pairs:
        values = [m[key] for m in metrics]
        assert float(row[f"{column}_mean"]) == pytest.approx(sum(values) / 2)
        assert float(row[f"{column}_std"]) == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    assert (out / "reliability_resnet10t.png").stat().st_size > 1000
    assert not list(out.glob("heatmap_*.png"))  # one (α, τ) point: no heatmap


def test_sweep_resumes_and_reruns_only_a_deleted_result(real_sweep):
    path, out, runs, _, _ = real_sweep
    counter, lines = CountTraining(), []
    again = run_sweep(load_sweep(path), callbacks=[counter], echo=lines.append, report=False)
    assert counter.started == [] and [r.status for r in again] == ["done", "done"]
    assert lines[0].endswith("(2 done, 0 to resume, 0 to restart, 0 new)")

    kept = out / runs[0].name / "results.json"
    kept_before = kept.read_bytes(), kept.stat().st_mtime_ns
    deleted = out / runs[1].name / "results.json"
    first_metrics = json.loads(deleted.read_text())["metrics"]
    deleted.unlink()
    counter = CountTraining()
    again = run_sweep(load_sweep(path), callbacks=[counter], echo=lambda line: None, report=False)
    assert [r.status for r in again] == ["done", "restart"]
    assert counter.started == [str(out / runs[1].name)]
    assert (kept.read_bytes(), kept.stat().st_mtime_ns) == kept_before
    # the re-run is seeded like the first one, whatever ran before it in this process
    metrics = json.loads(deleted.read_text())["metrics"]
    assert metrics["test_accuracy"] == first_metrics["test_accuracy"]
    assert metrics["test_nll"] == pytest.approx(first_metrics["test_nll"], rel=1e-4)


def test_finished_runs_from_another_recipe_are_not_silently_reused(real_sweep, tmp_path, monkeypatch):
    path, out, *_ = real_sweep
    content = yaml.safe_load(path.read_text())
    content["set"] = [s for s in content["set"] if not s.startswith("training.max_steps")] + ["training.max_steps=3"]
    changed = write_sweep(tmp_path, content)
    with pytest.raises(SweepError, match=r"was made from a different recipe than the one planned now \(differs in "
                       r"training.max_steps: "):
        plan_sweep(load_sweep(changed))
    # the same runs seen through another path to their folder (relative, not absolute) are still done
    content["set"] = yaml.safe_load(path.read_text())["set"]
    monkeypatch.chdir(out.parent)
    content["output_dir"] = out.name
    assert {r.status for r in plan_sweep(load_sweep(write_sweep(tmp_path, content)))} == {"done"}


def test_cli_dry_run_validates_and_writes_nothing(real_sweep, tmp_path, capsys):
    path, *_ = real_sweep
    cli = load_cli()
    assert cli.main(["run", str(path), "--dry-run", "--output-dir", str(tmp_path / "fresh")]) == 0
    printed = capsys.readouterr().out
    assert "2 runs in" in printed and "[2/2] new     loss.method=lsr_os_tc,loss.correct_prob=0.3,seed=1" in printed
    assert not (tmp_path / "fresh").exists()

    bad = write_sweep(tmp_path, {"recipe": str(DEMO_CE), "grids": [{"loss.alpha": [1.5]}]}, "bad.yaml")
    assert cli.main(["run", str(bad)]) == 2
    assert "loss.alpha must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "no results.json found" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# the report, from fake results


def fake_run(root: Path, name: str, seed: int, loss: dict, backbone: str, metrics: dict, rng=None) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    recipe = {
        "data": {"name": "demo"},
        "model": {"name": backbone},
        "loss": {
            "alpha": 0.5, "temperature": 4.0, "correct_prob": 0.2, "teacher_temperature": 20.0, "multiplier": 1.0,
            **loss,
        },  # fmt: skip
        "training": {"num_train_epochs": 5, "seed": seed, "output_dir": str(folder)},
        "schedule": {"milestones": [], "gamma": 0.1},
        "hub": {"push": False, "repo_id": None, "private": False},
    }
    results = {"metrics": metrics, "recipe": recipe, "seed": seed, "wall_seconds": 10.0}
    (folder / "results.json").write_text(json.dumps(results))
    if rng is not None:
        labels = rng.integers(0, 10, size=50)
        logits = rng.normal(size=(50, 10)).astype(np.float32) * 3
        np.savez(folder / "test_predictions.npz", logits=logits, labels=labels)


@pytest.fixture
def fake_sweep(tmp_path):
    """ce (3 seeds) and an lsr_os (α, τ) grid (2 seeds) on one backbone, an lsr_os_tc grid over a on another.

    lsr_os: (α=0.9, τ=2) has the best validation accuracy, (α=0.1, τ=8) the best test accuracy."""
    rng = np.random.default_rng(0)
    root = tmp_path / "sweep"
    values = {}

    def add(name, seed, loss, backbone, val, test, ece, nll, predictions=True):
        metrics = {"eval_accuracy": val, "eval_nll": 0.3, "test_accuracy": test, "test_ece": ece, "test_nll": nll}
        fake_run(root, f"{name},seed={seed}", seed, loss, backbone, metrics, rng if predictions else None)
        values.setdefault(name, []).append(metrics)

    for seed, (val, test) in enumerate([(0.90, 0.91), (0.92, 0.89), (0.94, 0.90)]):
        add("ce", seed, {"method": "ce"}, "net_a", val, test, 0.05 + seed / 100, 0.4 - seed / 50)
    lsr_os = {(0.9, 2.0): (0.96, 0.93), (0.9, 8.0): (0.95, 0.94), (0.1, 2.0): (0.93, 0.95), (0.1, 8.0): (0.94, 0.97)}
    for (alpha, tau), (val, test) in lsr_os.items():
        for seed in (0, 1):
            add(f"os{alpha},{tau}", seed, {"method": "lsr_os", "alpha": alpha, "temperature": tau}, "net_a",
                val + seed / 100, test - seed / 100, 0.02, 0.25, predictions=(alpha, tau) == (0.9, 2.0))  # fmt: skip
    for a in (0.2, 0.5):
        for tau in (2.0, 4.0):
            loss = {"method": "lsr_os_tc", "alpha": 0.5, "temperature": tau, "correct_prob": a}
            add(f"tc{a},{tau}", 0, loss, "net_b", 0.9 + a / 10 + tau / 100, 0.8, 0.03, 0.3, predictions=False)
    return root, values


def test_report_tables_hold_mean_and_std_over_seeds(fake_sweep):
    root, values = fake_sweep
    written = write_report(root)
    assert root / "results.md" in written and root / "results.csv" in written
    with (root / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 + 4 + 4
    ce = next(r for r in rows if r["method"] == "ce")
    test_accuracy = [m["test_accuracy"] for m in values["ce"]]
    mean = (0.91 + 0.89 + 0.90) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in test_accuracy) / 2)  # sample std, by hand
    assert float(ce["test_accuracy_mean"]) == pytest.approx(mean)
    assert float(ce["test_accuracy_std"]) == pytest.approx(std)
    assert float(ce["test_nll_mean"]) == pytest.approx((0.4 + 0.38 + 0.36) / 3)
    assert ce["n"] == "3" and ce["seeds"] == "0 1 2" and ce["alpha"] == ""  # ce has no loss parameters
    md = (root / "results.md").read_text()
    test_cell = f"{100 * mean:.2f} ± {100 * std:.2f}"
    row = f"| net_a | ce | — | 1 | 3 | 92.00 ± 2.00 | 0.3000 ± 0.0000 | {test_cell} | 6.00 ± 1.00 | 0.3800 ± 0.0200 | – |"
    assert row in md


def test_report_chooses_the_setting_by_validation_not_test(fake_sweep):
    root, _ = fake_sweep
    configs = summarize_runs(collect_runs(root))
    chosen = {(c.backbone, c.method): c for c in configs if c.selected}
    assert set(chosen) == {("net_a", "ce"), ("net_a", "lsr_os"), ("net_b", "lsr_os_tc")}
    lsr_os = chosen["net_a", "lsr_os"]
    assert lsr_os.params == {"loss.alpha": 0.9, "loss.temperature": 2.0}  # best val 0.965; best test is α=0.1, τ=8
    assert lsr_os.setting == "α=0.9, τ=2" and lsr_os.n_settings == 4
    assert chosen["net_b", "lsr_os_tc"].params == {"loss.alpha": 0.5, "loss.temperature": 4.0, "loss.correct_prob": 0.5}
    write_report(root)
    md = (root / "results.md").read_text()
    summary = md.split("## Summary")[1].split("## All configurations")[0]
    row = "| net_a | lsr_os | α=0.9, τ=2 | 4 | 2 | 96.50 ± 0.71 | 0.3000 ± 0.0000 | 92.50 ± 0.71 | 2.00 ± 0.00 | 0.2500 ± 0.0000 | – |"
    assert row in summary
    assert "97" not in summary  # the test-best setting (96.50 test) is not what is reported
    with (root / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    selected = [(r["method"], r["alpha"], r["temperature"]) for r in rows if r["selected"] == "True"]
    assert ("lsr_os", "0.9", "2.0") in selected and len(selected) == 3


def test_validation_ties_are_broken_by_validation_nll(tmp_path):
    for name, tau, nll, test in [("first", 2.0, 0.4, 0.99), ("second", 8.0, 0.2, 0.90)]:
        metrics = {"eval_accuracy": 0.95, "eval_nll": nll, "test_accuracy": test, "test_ece": 0.1, "test_nll": 0.3}
        fake_run(tmp_path, name, 0, {"method": "lsr_os", "temperature": tau}, "net", metrics)
    (chosen,) = [c for c in summarize_runs(collect_runs(tmp_path)) if c.selected]
    assert chosen.params["loss.temperature"] == 8.0 and chosen.n_settings == 2


def test_select_by_nll_picks_the_lowest_validation_nll_and_the_report_says_so(tmp_path):
    # (val acc, val NLL): τ=2 wins on accuracy, τ=8 on NLL; the τ=4 tie on NLL with τ=8 goes to the higher accuracy
    for name, tau, acc, nll in [("t2", 2.0, 0.95, 0.40), ("t4", 4.0, 0.85, 0.20), ("t8", 8.0, 0.90, 0.20)]:
        metrics = {"eval_accuracy": acc, "eval_nll": nll, "test_accuracy": 0.9, "test_ece": 0.1, "test_nll": 0.3}
        fake_run(tmp_path, name, 0, {"method": "lsr_os", "temperature": tau}, "net", metrics)
    records = collect_runs(tmp_path)
    by_accuracy = [c for c in summarize_runs(records) if c.selected]
    by_nll = [c for c in summarize_runs(records, select_by="nll") if c.selected]
    assert [c.params["loss.temperature"] for c in by_accuracy] == [2.0]
    assert [c.params["loss.temperature"] for c in by_nll] == [8.0]
    write_report(tmp_path, select_by="nll")
    text = (tmp_path / "results.md").read_text()
    assert "chosen by mean validation NLL** over the seeds" in text and "--select-by nll" in text
    with (tmp_path / "results.csv").open() as handle:
        rows = {r["temperature"]: r for r in csv.DictReader(handle)}
    assert rows["8.0"]["selected"] == "True" and rows["2.0"]["selected"] == "False"
    assert float(rows["4.0"]["val_nll_mean"]) == pytest.approx(0.20)
    with pytest.raises(SweepError, match="select_by must be one of accuracy, nll, got 'ece'"):
        write_report(tmp_path, select_by="ece")


def test_report_plots(fake_sweep):
    import matplotlib.image

    root, _ = fake_sweep
    (root / "heatmap_lsr_os_gone.png").write_bytes(b"stale")  # a plot of runs that are no longer there
    written = {p.name for p in write_report(root)}
    assert not (root / "heatmap_lsr_os_gone.png").exists()
    assert {"heatmap_lsr_os_net_a.png", "heatmap_lsr_os_tc_net_b.png", "reliability_net_a.png"} <= written
    assert "reliability_net_b.png" not in written  # net_b's runs saved no predictions
    for name in ("heatmap_lsr_os_net_a.png", "heatmap_lsr_os_tc_net_b.png", "reliability_net_a.png"):
        image = matplotlib.image.imread(root / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
    md = (root / "results.md").read_text()
    assert "![heatmap_lsr_os_net_a](heatmap_lsr_os_net_a.png)" in md


def test_seconds_per_epoch_column(tmp_path):
    base = {"eval_accuracy": 0.9, "eval_nll": 0.3, "test_accuracy": 0.9, "test_ece": 0.1, "test_nll": 0.3}
    fake_run(tmp_path, "timed", 0, {"method": "ce"}, "net_a", {**base, "train_seconds_per_epoch": 12.5,
                                                               "train_runtime": 99.0, "epoch": 2.0})
    fake_run(tmp_path, "older", 0, {"method": "ce"}, "net_b", {**base, "train_runtime": 30.0, "epoch": 3.0})
    fake_run(tmp_path, "resumed", 0, {"method": "ce"}, "net_c", {**base, "train_runtime": 30.0, "epoch": 3.0})
    path = tmp_path / "resumed" / "results.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "resumed_from": "resumed/checkpoint-4"}))
    seconds = {c.backbone: c.mean("train_seconds_per_epoch") for c in summarize_runs(collect_runs(tmp_path))}
    assert seconds["net_a"] == 12.5  # measured by the run's EpochTimer
    assert seconds["net_b"] == 10.0  # older results: train_runtime / epoch
    assert math.isnan(seconds["net_c"])  # resumed: train_runtime covers only part of the run
    write_report(tmp_path)
    with (tmp_path / "results.csv").open() as handle:
        rows = {r["backbone"]: r for r in csv.DictReader(handle)}
    assert rows["net_b"]["seconds_per_epoch_mean"] == "10.0" and rows["net_c"]["seconds_per_epoch_mean"] == ""
    assert "| net_a | ce | — | 1 | 1 | 90.00 | 0.3000 | 90.00 | 10.00 | 0.3000 | 12.5 |" in (tmp_path / "results.md").read_text()


def test_runs_of_an_older_version_group_with_newer_ones(tmp_path):
    # seed 0 was made before data.max_skipped_fraction existed; seed 1 has it at its default
    base = {"eval_accuracy": 0.9, "eval_nll": 0.3, "test_accuracy": 0.9, "test_ece": 0.1, "test_nll": 0.3}
    fake_run(tmp_path, "old", 0, {"method": "ce"}, "net", base)
    fake_run(tmp_path, "new", 1, {"method": "ce"}, "net", base)
    path = tmp_path / "new" / "results.json"
    results = json.loads(path.read_text())
    results["recipe"]["data"]["max_skipped_fraction"] = 0.01
    path.write_text(json.dumps(results))
    (config,) = summarize_runs(collect_runs(tmp_path))
    assert config.n == 2 and "data.max_skipped_fraction" not in config.params
    # a field set to two different values still tells configurations apart
    fake_run(tmp_path, "newer", 2, {"method": "ce"}, "net", base)
    path = tmp_path / "newer" / "results.json"
    results = json.loads(path.read_text())
    results["recipe"]["data"]["max_skipped_fraction"] = 0.5
    path.write_text(json.dumps(results))
    assert sorted(c.n for c in summarize_runs(collect_runs(tmp_path))) == [1, 1, 1]


def add_config(root, backbone, method, seeds_and_values, extra=None, **loss):
    """Runs of one configuration: {seed: (validation accuracy, test accuracy)}; ``extra`` metrics for every run."""
    key = ",".join(f"{k}={v}" for k, v in loss.items())
    for seed, (val, test) in seeds_and_values.items():
        metrics = {"eval_accuracy": val, "eval_nll": 0.3, "test_accuracy": test, "test_ece": 0.1, "test_nll": 0.3}
        metrics.update(extra or {})
        fake_run(root, f"{backbone},{method},{key},seed={seed}", seed, {"method": method, **loss}, backbone, metrics)


def test_selection_compares_settings_on_the_seeds_they_share(tmp_path):
    # α=0.1 was chosen on seed 0 (0.95 > 0.93), then run with seeds 1 and 2 as well, which score lower: over all its
    # seeds its mean (0.9167) is below α=0.3's single run, but on the shared seed 0 it still wins
    add_config(tmp_path, "net", "lsr", {0: (0.95, 0.90), 1: (0.90, 0.90), 2: (0.90, 0.90)}, alpha=0.1)
    add_config(tmp_path, "net", "lsr", {0: (0.93, 0.99)}, alpha=0.3)
    (chosen,) = [c for c in summarize_runs(collect_runs(tmp_path)) if c.selected]
    assert chosen.params == {"loss.alpha": 0.1} and chosen.n == 3
    assert chosen.mean("eval_accuracy") == pytest.approx((0.95 + 0.90 + 0.90) / 3)  # the table keeps every seed


def test_transfer_table_by_hand(tmp_path):
    from lsr_hf.sweep.transfer import summarize_transfer, transfer_rows

    # lsr_os on two backbones, (α, τ) in {(0.1, 2), (0.3, 8)}; net_a prefers (0.1, 2), net_b (0.3, 8)
    add_config(tmp_path, "net_a", "lsr_os", {0: (0.95, 0.91), 1: (0.95, 0.93)}, alpha=0.1, temperature=2.0)
    add_config(tmp_path, "net_a", "lsr_os", {0: (0.90, 0.88)}, alpha=0.3, temperature=8.0)
    add_config(tmp_path, "net_b", "lsr_os", {0: (0.80, 0.75)}, alpha=0.1, temperature=2.0)
    add_config(tmp_path, "net_b", "lsr_os", {0: (0.85, 0.84), 1: (0.86, 0.70)}, alpha=0.3, temperature=8.0)
    # lsr: the same choice on both backbones (no loss); ce: no grid, so no row
    add_config(tmp_path, "net_a", "lsr", {0: (0.92, 0.90)}, alpha=0.1)
    add_config(tmp_path, "net_a", "lsr", {0: (0.91, 0.95)}, alpha=0.3)
    add_config(tmp_path, "net_b", "lsr", {0: (0.82, 0.80)}, alpha=0.1)
    add_config(tmp_path, "net_b", "lsr", {0: (0.81, 0.85)}, alpha=0.3)
    add_config(tmp_path, "net_a", "ce", {0: (0.9, 0.9)})
    add_config(tmp_path, "net_b", "ce", {0: (0.8, 0.8)})
    rows = {(r.method, r.source, r.target): r for r in transfer_rows(summarize_runs(collect_runs(tmp_path)))}
    assert set(rows) == {(m, s, t) for m in ("lsr", "lsr_os") for s, t in (("net_a", "net_b"), ("net_b", "net_a"))}
    a_to_b = rows["lsr_os", "net_a", "net_b"]
    assert (a_to_b.setting, a_to_b.own_setting, a_to_b.seeds) == ("α=0.1, τ=2", "α=0.3, τ=8", (0,))
    assert a_to_b.transferred_accuracy == 0.75 and a_to_b.own_accuracy == 0.84  # seed 0 only: shared by both
    assert a_to_b.loss == pytest.approx(0.09)
    b_to_a = rows["lsr_os", "net_b", "net_a"]
    assert (b_to_a.transferred_accuracy, b_to_a.own_accuracy) == (0.88, 0.91)
    assert rows["lsr", "net_a", "net_b"].loss == 0.0 and rows["lsr", "net_b", "net_a"].loss == 0.0
    summary = {s.method: s for s in summarize_transfer(list(rows.values()))}
    assert summary["lsr_os"].changed == 2 and summary["lsr_os"].pairs == 2
    assert summary["lsr_os"].mean_loss == pytest.approx((0.09 + 0.03) / 2)
    assert summary["lsr_os"].max_loss == pytest.approx(0.09)
    assert summary["lsr"].changed == 0 and summary["lsr"].max_loss == 0.0
    written = write_report(tmp_path)
    assert tmp_path / "transfer.csv" in written
    md = (tmp_path / "results.md").read_text()
    assert "| lsr_os | 2 | 2 of 2 | 6.00 | 9.00 |" in md
    assert "| lsr_os | net_a → net_b | α=0.1, τ=2 | α=0.3, τ=8 | 0 | 75.00 | 84.00 | 9.00 |" in md
    with (tmp_path / "transfer.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_methods_against_ce_paired_by_seed_by_hand(tmp_path):
    from lsr_hf.sweep.paired import paired_differences

    add_config(tmp_path, "net_a", "ce", {0: (0.80, 0.80), 1: (0.80, 0.82), 2: (0.80, 0.81)})
    add_config(tmp_path, "net_a", "lsr", {0: (0.90, 0.83), 1: (0.90, 0.82), 2: (0.90, 0.85)}, alpha=0.1)
    add_config(tmp_path, "net_a", "lsr", {0: (0.85, 0.99)}, alpha=0.3)  # not chosen (lower validation accuracy)
    add_config(tmp_path, "net_a", "lsr_os", {1: (0.90, 0.80), 3: (0.90, 0.70)}, alpha=0.1, temperature=2.0)
    add_config(tmp_path, "net_b", "lsr", {0: (0.90, 0.90)}, alpha=0.1)  # no ce on net_b: no row
    rows = {(r.backbone, r.method): r for r in paired_differences(summarize_runs(collect_runs(tmp_path)))}
    assert set(rows) == {("net_a", "lsr"), ("net_a", "lsr_os")}
    lsr = rows["net_a", "lsr"]
    assert lsr.setting == "α=0.1" and lsr.seeds == (0, 1, 2)
    mean, std = lsr.differences["test_accuracy"]
    # differences 3, 0, 4 points: mean 7/3, sample variance ((2/3)² + (7/3)² + (5/3)²) / 2 = 13/3
    assert mean * 100 == pytest.approx(7 / 3) and std * 100 == pytest.approx(math.sqrt(13 / 3))
    assert lsr.differences["test_ece"] == (0.0, 0.0)
    lsr_os = rows["net_a", "lsr_os"]
    assert lsr_os.seeds == (1,) and lsr_os.differences["test_accuracy"][0] == pytest.approx(-0.02)
    assert math.isnan(lsr_os.differences["test_accuracy"][1])  # one shared seed: no spread
    write_report(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| net_a | lsr | α=0.1 | 0 1 2 | +2.33 ± 2.08 | +0.00 ± 0.00 | +0.0000 ± 0.0000 |" in md
    assert "| net_a | lsr_os | α=0.1, τ=2 | 1 | -2.00 | +0.00 | +0.0000 |" in md


def test_one_setting_across_backbones_by_hand(tmp_path):
    from lsr_hf.sweep.across import across_backbones

    ece = lambda e, nll=0.3: {"eval_ece": e, "eval_nll": nll}  # noqa: E731
    # net_a's ce has seeds 0 and 1, the lsr grid only seed 0: gains are taken on seed 0 (ce 0.80, not the mean 0.82)
    add_config(tmp_path, "net_a", "ce", {0: (0.80, 0.70), 1: (0.84, 0.74)}, ece(0.01))
    add_config(tmp_path, "net_b", "ce", {0: (0.50, 0.40)}, ece(0.03))
    add_config(tmp_path, "net_a", "lsr", {0: (0.85, 0.71), 1: (0.70, 0.60)}, ece(0.10), alpha=0.1)
    add_config(tmp_path, "net_a", "lsr", {0: (0.83, 0.72)}, ece(0.20), alpha=0.3)
    add_config(tmp_path, "net_b", "lsr", {0: (0.49, 0.41)}, ece(0.30), alpha=0.1)
    add_config(tmp_path, "net_b", "lsr", {0: (0.56, 0.30)}, ece(0.40), alpha=0.3)
    add_config(tmp_path, "net_c", "lsr", {0: (0.10, 0.10)}, ece(0.50), alpha=0.1)  # no ce on net_c: left out
    add_config(tmp_path, "net_a", "lsr_os", {0: (0.99, 0.99)}, alpha=0.1, temperature=2.0)  # not on net_b: no row
    # tfkd: equal gains (same accuracies), the lower validation NLL is chosen
    add_config(tmp_path, "net_a", "tfkd", {0: (0.82, 0.7)}, ece(0.1, nll=0.5), alpha=0.1, multiplier=1.0)
    add_config(tmp_path, "net_b", "tfkd", {0: (0.50, 0.4)}, ece(0.1, nll=0.5), alpha=0.1, multiplier=1.0)
    add_config(tmp_path, "net_a", "tfkd", {0: (0.82, 0.7)}, ece(0.1, nll=0.4), alpha=0.9, multiplier=1.0)
    add_config(tmp_path, "net_b", "tfkd", {0: (0.50, 0.4)}, ece(0.1, nll=0.4), alpha=0.9, multiplier=1.0)
    rows = {(r.method, r.setting): r for r in across_backbones(summarize_runs(collect_runs(tmp_path)))}
    assert set(rows) == {("ce", "—"), ("lsr", "α=0.1"), ("lsr", "α=0.3"), ("tfkd", "α=0.1, T_t=20, mult=1"),
                         ("tfkd", "α=0.9, T_t=20, mult=1")}  # fmt: skip
    low, high = rows["lsr", "α=0.1"], rows["lsr", "α=0.3"]
    assert low.backbones == ("net_a", "net_b") and not low.chosen and high.chosen
    assert low.mean_gain == pytest.approx((0.05 - 0.01) / 2) and low.worst_gain == pytest.approx(-0.01)
    assert high.mean_gain == pytest.approx((0.03 + 0.06) / 2) and high.worst_gain == pytest.approx(0.03)
    assert high.mean_test_gain == pytest.approx((0.02 - 0.10) / 2)
    assert low.mean_ece == pytest.approx((0.10 + 0.30) / 2)  # seed 0 only on net_a
    ce = rows["ce", "—"]
    assert ce.chosen and ce.mean_gain == 0.0 and ce.mean_ece == pytest.approx(0.02)
    assert rows["tfkd", "α=0.9, T_t=20, mult=1"].chosen and not rows["tfkd", "α=0.1, T_t=20, mult=1"].chosen
    write_report(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| lsr | α=0.3 | 2 | ✓ | +4.50 | +3.00 | 30.00 | 0.3000 | -4.00 |" in md


def set_training(folder: Path, **training) -> None:
    path = folder / "results.json"
    results = json.loads(path.read_text())
    results["recipe"]["training"].update(training)
    path.write_text(json.dumps(results))


def test_an_optimizer_set_per_backbone_is_the_backbones_recipe_not_part_of_the_setting(tmp_path):
    from lsr_hf.sweep.transfer import transfer_rows

    # net_b (think ConvNeXt) trains with AdamW, net_a (a ResNet) with SGD; both sweep lsr's α
    for backbone, values in (("net_a", {0.1: (0.92, 0.90), 0.3: (0.91, 0.95)}),
                             ("net_b", {0.1: (0.80, 0.78), 0.3: (0.82, 0.85)})):  # fmt: skip
        for alpha, scores in values.items():
            add_config(tmp_path, backbone, "lsr", {0: scores}, alpha=alpha)
    for folder in tmp_path.iterdir():
        if folder.name.startswith("net_b"):
            set_training(folder, optim="adamw_torch", learning_rate=0.002)
        else:
            set_training(folder, optim="sgd", learning_rate=0.1)
    configs = summarize_runs(collect_runs(tmp_path))
    assert {tuple(c.params) for c in configs} == {("loss.alpha",)}
    recipes = {c.backbone: c.backbone_recipe for c in configs}
    assert recipes == {
        "net_a": {"training.learning_rate": 0.1, "training.optim": "sgd"},
        "net_b": {"training.learning_rate": 0.002, "training.optim": "adamw_torch"},
    }
    rows = {(r.source, r.target): r for r in transfer_rows(configs)}
    assert rows["net_a", "net_b"].setting == "α=0.1" and rows["net_a", "net_b"].loss == pytest.approx(0.07)
    write_report(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "## Backbone recipes" in md
    assert "| net_b | training.learning_rate=0.002, training.optim=adamw_torch |" in md
    with (tmp_path / "results.csv").open() as handle:
        assert {r["backbone"]: r["training.optim"] for r in csv.DictReader(handle)} == {
            "net_a": "sgd", "net_b": "adamw_torch"
        }  # fmt: skip

    # a key that differs within one backbone is part of the setting, on every backbone
    metrics = {"eval_accuracy": 0.99, "eval_nll": 0.3, "test_accuracy": 0.80, "test_ece": 0.1, "test_nll": 0.3}
    fake_run(tmp_path, "net_a,lsr,adamw", 0, {"method": "lsr", "alpha": 0.3}, "net_a", metrics)
    set_training(tmp_path / "net_a,lsr,adamw", optim="adamw_torch", learning_rate=0.1)
    configs = summarize_runs(collect_runs(tmp_path))
    assert all("training.optim" in c.params and "training.optim" not in c.backbone_recipe for c in configs)
    assert all(c.backbone_recipe == {"training.learning_rate": {"net_a": 0.1, "net_b": 0.002}[c.backbone]}
               for c in configs)  # fmt: skip
    (chosen,) = [c for c in configs if c.selected and c.backbone == "net_a"]
    assert chosen.setting == "α=0.3, training.optim=adamw_torch"


# ----------------------------------------------------------------------------------------------------------------
# reliability_bins


def confident(p: float, correct: bool) -> tuple[list[float], int]:
    """Logits of a 2-class row whose max probability is p, and a label that makes it right or wrong."""
    return [math.log(p), math.log(1 - p)], 0 if correct else 1


def test_reliability_bins_by_hand():
    rows = [confident(0.95, True), confident(0.85, False), confident(0.55, True), confident(0.65, True)]
    logits = np.array([r[0] for r in rows] + [[0.0, 1.0]])
    labels = np.array([r[1] for r in rows] + [-100])  # the last row is ignored
    confidence, accuracy, count = reliability_bins(logits, labels, n_bins=5)  # bins of width 0.2
    np.testing.assert_array_equal(count, [0, 0, 1, 1, 2])
    np.testing.assert_allclose(confidence[2:], [0.55, 0.65, 0.9])
    np.testing.assert_allclose(accuracy[2:], [1.0, 1.0, 0.5])
    assert np.isnan(confidence[:2]).all() and np.isnan(accuracy[:2]).all()
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(logits, labels, n_bins=0)


def test_reliability_bins_add_up_to_the_ece():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(300, 7)) * 2, rng.integers(0, 7, size=300)
    confidence, accuracy, count = reliability_bins(logits, labels)
    assert count.sum() == 300 and len(count) == 15
    full = count > 0
    ece = float(np.sum(count[full] * np.abs(accuracy[full] - confidence[full])) / count.sum())
    assert ece == pytest.approx(expected_calibration_error(logits, labels))


# ----------------------------------------------------------------------------------------------------------------
# stage 2: the chosen settings, repeated with more seeds


def test_repeat_writes_a_sweep_of_the_settings_chosen_on_validation(tmp_path, capsys):
    grids = [
        {"loss.method": ["lsr"], "loss.alpha": [0.1, 0.3]},
        {"loss.method": ["lsr_os"], "loss.alpha": [0.1, 0.3], "loss.temperature": [2.0]},
    ]
    out = tmp_path / "out"
    sweep_file = write_sweep(tmp_path, {"recipe": str(DEMO_CE), "output_dir": str(out), "set": TINY, "grids": grids})
    cli = load_cli()
    target = tmp_path / "stage2" / "seeds.yaml"
    target.parent.mkdir()
    assert cli.main(["repeat", str(sweep_file), "--seeds", "1", "2", "--out", str(target)]) == 2  # nothing finished
    assert "no run of this sweep has finished" in capsys.readouterr().err

    # validation picks lsr α 0.3 (test would pick 0.1); lsr_os α 0.3 never finished, so α 0.1 is chosen
    scores = {"lsr,loss.alpha=0.1": (0.80, 0.95), "lsr,loss.alpha=0.3": (0.85, 0.90),
              "lsr_os,loss.alpha=0.1,loss.temperature=2.0": (0.70, 0.70)}  # fmt: skip
    stage1 = {p.name: p for p in plan_sweep(load_sweep(sweep_file))}
    for key, (val, test) in scores.items():
        planned = stage1[f"loss.method={key},seed=0"]
        planned.output_dir.mkdir(parents=True)
        results = {"recipe": planned.recipe.to_dict(), "seed": 0,
                   "metrics": {"eval_accuracy": val, "eval_nll": 0.5, "test_accuracy": test}}  # fmt: skip
        (planned.output_dir / "results.json").write_text(json.dumps(results))

    assert cli.main(["repeat", str(sweep_file), "--seeds", "1", "2", "--out", str(target)]) == 0
    printed = capsys.readouterr()
    assert "1 run(s) of" in printed.err and "loss.method=lsr_os,loss.alpha=0.3,loss.temperature=2.0,seed=0" in printed.err
    stage2 = load_sweep(target)  # the recipe path is relative to the new file's folder
    assert stage2.recipe == str(DEMO_CE) and stage2.output_dir == str(out) and stage2.seeds == (1, 2)
    assert stage2.set == tuple(TINY)
    runs = plan_sweep(stage2)
    assert [r.name for r in runs] == [
        "loss.method=lsr,loss.alpha=0.3,seed=1",
        "loss.method=lsr_os,loss.alpha=0.1,loss.temperature=2.0,seed=1",
        "loss.method=lsr,loss.alpha=0.3,seed=2",
        "loss.method=lsr_os,loss.alpha=0.1,loss.temperature=2.0,seed=2",
    ]
    for run in runs:  # the same recipe as the chosen stage-1 run, but for the seed and the folder
        twin = stage1[run.name.rsplit(",seed=", 1)[0] + ",seed=0"].recipe.to_dict()
        mine = run.recipe.to_dict()
        assert mine["training"].pop("seed") == run.seed and twin["training"].pop("seed") == 0
        assert mine["training"].pop("output_dir") == str(out / run.name)
        twin["training"].pop("output_dir")
        assert mine == twin


def test_repeat_of_a_k_fold_sweep_keeps_its_folds(tmp_path):
    from lsr_hf.sweep.repeat import ChosenSetting, RepeatPlan, repeat_sweep_text

    content = {"recipe": str(DEMO_CE), "output_dir": str(tmp_path / "out"), "folds": 4,
               "grids": [{"loss.method": ["lsr"], "loss.alpha": [0.1, 0.3]}]}  # fmt: skip
    spec = load_sweep(write_sweep(tmp_path, content))
    plan = RepeatPlan(chosen=[ChosenSetting({"loss.method": "lsr", "loss.alpha": 0.3}, 0.9, 2)])
    target = tmp_path / "seeds.yaml"
    target.write_text(repeat_sweep_text(spec, plan, [1, 2], target, "repeat"))
    runs = plan_sweep(load_sweep(target))
    assert [(r.seed, r.fold) for r in runs] == [(s, f) for s in (1, 2) for f in range(4)]
    assert runs[0].name == "loss.method=lsr,loss.alpha=0.3,fold=0,seed=1"
