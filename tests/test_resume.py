"""--resume reproduces the uninterrupted run exactly, whatever kind of checkpoint the run was stopped after.

The demo recipe (augmentation on: random crop), shortened: 2 epochs of 6 steps, a checkpoint every 3 steps and an
evaluation at every epoch end. A run stopped right after checkpoint-N leaves on disk what the uninterrupted run had
at that moment: ``recipe.yaml`` and checkpoints 1..N (a kill after the checkpoint, before the next one). Each such
folder is resumed and must end with the uninterrupted run's metrics and test logits, bit for bit:

* checkpoint-3: mid-epoch;
* checkpoint-6: the epoch boundary, saved before the epoch-end evaluation (which used to draw from torch's global
  generator, so the resumed run augmented epoch 2 with other random crops: issue 31);
* checkpoint-12: the last step (killed before the final evaluation and results.json).

A Ctrl-C (SIGINT) during training stops at the end of the step with a checkpoint of that step, exit status 130 and
one line naming the checkpoint and ``--resume``; resuming from it gives the same metrics too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from transformers import TrainerCallback

from lsr_hf.errors import TrainingInterrupted
from lsr_hf.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "recipes" / "demo_lsr_os_tc.yaml"
SETTINGS = {
    "model.name": "test_resnet", "data.max_train_samples": 96, "data.max_eval_samples": 64,
    "training.num_train_epochs": 2, "training.per_device_train_batch_size": 16,
    "training.per_device_eval_batch_size": 64, "training.save_strategy": "steps", "training.save_steps": 3,
    "training.save_total_limit": "null", "training.eval_strategy": "epoch", "training.logging_steps": 2,
    "training.use_cpu": "true", "training.dataloader_num_workers": 0, "training.dataloader_pin_memory": "false",
    "training.disable_tqdm": "true", "training.report_to": "none", "training.seed": 3,
}  # fmt: skip
TIMING = ("runtime", "per_second", "train_seconds_per_epoch", "train_loss")


@pytest.fixture(autouse=True)
def quiet_logging():
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)


def demo_recipe(output_dir: Path):
    overrides = [f"{k}={v}" for k, v in {**SETTINGS, "training.output_dir": str(output_dir)}.items()]
    return load_recipe(DEMO, overrides)


def comparable(metrics: dict) -> dict:
    """Every final metric but the timings."""
    return {k: v for k, v in metrics.items() if not any(t in k for t in TIMING)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, dict]:
    from lsr_hf.job.train import run

    out = tmp_path_factory.mktemp("resume") / "full"
    results = run(demo_recipe(out), command="test")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{n}" for n in (12, 3, 6, 9)]
    return out, results


def stopped_after(full: Path, step: int, folder: Path) -> Path:
    """What the run's folder held when it was killed right after writing checkpoint-``step``."""
    folder.mkdir(parents=True)
    shutil.copy(full / "recipe.yaml", folder / "recipe.yaml")
    for checkpoint in full.glob("checkpoint-*"):
        if int(checkpoint.name.split("-")[1]) <= step:
            shutil.copytree(checkpoint, folder / checkpoint.name)
    return folder


def assert_same_run(resumed_dir: Path, resumed: dict, full_dir: Path, full: dict) -> None:
    assert comparable(resumed["metrics"]) == comparable(full["metrics"])
    got, want = np.load(resumed_dir / "test_predictions.npz"), np.load(full_dir / "test_predictions.npz")
    np.testing.assert_array_equal(got["logits"], want["logits"])
    np.testing.assert_array_equal(got["labels"], want["labels"])


@pytest.mark.parametrize("step", [3, 6, 12], ids=["mid-epoch", "epoch-boundary", "last-step"])
def test_resume_after_a_kill_at_any_checkpoint_gives_the_uninterrupted_run(uninterrupted, tmp_path, step) -> None:
    from lsr_hf.job.train import run

    full_dir, full = uninterrupted
    folder = stopped_after(full_dir, step, tmp_path / "out")
    resumed = run(demo_recipe(folder), resume=True, command="test")
    assert resumed["resumed_from"] == str(folder / f"checkpoint-{step}")
    assert_same_run(folder, resumed, full_dir, full)


class CtrlC(TrainerCallback):
    """Sends this process a real SIGINT at the start of step ``step`` (what Ctrl-C in the terminal does)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_a_checkpoint_says_how_to_resume_and_resume_gives_the_same_run(uninterrupted, tmp_path) -> None:
    from lsr_hf.job.train import run

    full_dir, full = uninterrupted
    out = tmp_path / "out"
    recipe = demo_recipe(out)
    with pytest.raises(TrainingInterrupted) as caught:
        run(recipe, callbacks=[CtrlC(step=5)], command="lsr-hf train --recipe r.yaml")
    err = caught.value
    assert err.exit_code == 130
    assert str(err) == (
        f"interrupted (Ctrl-C) at step 5 of 12: saved {out / 'checkpoint-5'}; continue with: "
        "lsr-hf train --recipe r.yaml --resume"
    )
    assert "\n" not in str(err)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-5"]
    assert not (out / "results.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    resumed = run(recipe, resume=True, command="test")
    assert resumed["resumed_from"] == str(out / "checkpoint-5")
    assert_same_run(out, resumed, full_dir, full)


def test_results_record_the_train_loss_of_the_whole_run_after_a_resume(uninterrupted, tmp_path) -> None:
    """Trainer restarts its running loss sum at a resume; the job keeps it in the checkpoint, so train_loss is the
    mean over all steps, not the resumed steps' sum divided by all steps."""
    from lsr_hf.job.train import run

    full_dir, full = uninterrupted
    folder = stopped_after(full_dir, 9, tmp_path / "out")
    resumed = run(demo_recipe(folder), resume=True, command="test")
    assert resumed["metrics"]["train_loss"] == pytest.approx(full["metrics"]["train_loss"], rel=1e-6)
    state = json.loads((folder / "checkpoint-12" / "trainer_state.json").read_text())
    assert state["global_step"] == 12
