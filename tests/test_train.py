"""The training job end to end: scripts/train.py on tiny local datasets in the Hub layouts (image and audio),
--resume after a crash, 2-process DDP with torchrun, malformed recipes, and the Hub push checked before
training (the push itself: tests/test_hub.py)."""

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data_fixtures import write_gtzan_parquet, write_image_parquet
from lsr_hf.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
TRAINING = dict(
    num_train_epochs=2, per_device_train_batch_size=16, per_device_eval_batch_size=32, learning_rate=0.05,
    optim="sgd", eval_strategy="epoch", save_strategy="epoch", logging_steps=1, report_to="none", use_cpu=True,
    seed=0, disable_tqdm=True, dataloader_num_workers=0,
)  # fmt: skip
LOSS = dict(method="lsr_os_tc", alpha=0.5, temperature=2.0, correct_prob=0.3)


def write_recipe(tmp_path: Path, data: dict, model: dict, name="recipe.yaml", **sections) -> Path:
    recipe = {
        "data": data,
        "model": model,
        "loss": LOSS,
        "training": {**TRAINING, "output_dir": str(tmp_path / "out")},
        **sections,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def image_recipe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("image")
    root = write_image_parquet(tmp / "data", "cifar10", n_per_class=4)  # 40 train (30 after carving), 40 test
    schedule = {"milestones": [1], "gamma": 0.1}
    data = {"name": "cifar10", "path": str(root), "validation_fraction": 0.25}
    return write_recipe(tmp, data, {"name": "resnet10t"}, schedule=schedule)


def run_script(*args, launcher=(sys.executable,), timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*launcher, str(TRAIN_SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def read_results(output_dir: Path) -> dict:
    return json.loads((output_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def image_run(image_recipe):
    proc = run_script("--recipe", str(image_recipe))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, image_recipe.parent / "out"


def test_image_job_writes_results_model_and_card(image_run, image_recipe):
    proc, out = image_run
    assert "test accuracy" in proc.stdout
    results = read_results(out)
    metrics = results["metrics"]
    for key in ("test_accuracy", "test_top5_accuracy", "test_ece", "test_nll", "test_ce", "eval_accuracy", "train_loss"):
        assert 0.0 <= metrics[key] < 10.0, key
    assert results["recipe"]["loss"] == load_recipe(image_recipe).to_dict()["loss"]
    assert results["seed"] == 0
    # the epoch timer leaves out the per-epoch evaluation that train_runtime includes
    assert 0 < metrics["train_seconds_per_epoch"] <= metrics["train_runtime"] / metrics["epoch"]
    assert results["dataset"]["sizes"] == {"train": 30, "validation": 10, "test": 40}
    assert results["environment"]["versions"]["torch"] == version("torch")
    assert results["environment"]["world_size"] == 1
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert "lsr_os_tc" in (out / "README.md").read_text()
    assert load_recipe(out / "recipe.yaml") == load_recipe(image_recipe)


def test_saved_image_model_reloads_and_reproduces_test_accuracy(image_run, image_recipe):
    from transformers import AutoModelForImageClassification

    import lsr_hf  # noqa: F401  (registers the architectures)
    from lsr_hf.data import prepare_data
    from lsr_hf.metrics.functional import accuracy

    _, out = image_run
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    data = prepare_data(load_recipe(image_recipe).data)
    batch = data.eval_collator([data.test[i] for i in range(len(data.test))])
    with torch.no_grad():
        logits = model(pixel_values=batch["pixel_values"]).logits
    assert accuracy(logits.numpy(), batch["labels"].numpy()) == pytest.approx(read_results(out)["metrics"]["test_accuracy"])
    saved = np.load(out / "test_predictions.npz", allow_pickle=False)
    np.testing.assert_array_equal(saved["labels"], batch["labels"].numpy())
    np.testing.assert_allclose(saved["logits"], logits.numpy(), rtol=1e-4, atol=1e-4)


def test_step_schedule_multiplies_lr_by_gamma_at_the_milestone(image_run):
    _, out = image_run
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    rates = [r["learning_rate"] for r in history if "learning_rate" in r]
    # 30 images / batch 16 = 2 steps an epoch; the milestone at epoch 1 divides the rate of the steps of epoch 2
    # (Trainer logs the rate each step used); no warm-up
    assert rates == pytest.approx([0.05, 0.05, 0.005, 0.005])


def test_audio_job_skips_and_counts_the_corrupt_clip(tmp_path):
    root = write_gtzan_parquet(tmp_path / "data", n_per_class=2, seconds=1.0, sample_rate=8000, corrupt=1)
    recipe = write_recipe(
        tmp_path,
        {"name": "gtzan", "path": str(root), "sample_rate": 8000, "segment_seconds": 0.5, "max_skipped_fraction": 0.1},
        {"name": "resnet10t", "n_mels": 16, "n_fft": 256, "hop_length": 64},
    )
    proc = run_script("--recipe", str(recipe), "--set", "training.num_train_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = read_results(tmp_path / "out")
    assert results["dataset"]["num_skipped"] == {"train": 1, "validation": 0, "test": 0}  # 1 of 20 clips: 5%
    assert results["dataset"]["sizes"]["test"] == 20  # clips: evaluation is clip-level
    assert results["dataset"]["sizes"]["train"] == 19 * 2  # 19 decodable clips of 1 s → 2 segments of 0.5 s
    assert 0.0 <= results["metrics"]["test_accuracy"] <= 1.0
    assert "pipeline_tag: audio-classification" in (tmp_path / "out" / "README.md").read_text()
    saved = np.load(tmp_path / "out" / "test_predictions.npz", allow_pickle=False)
    assert saved["segment_logits"].shape == (20, 2, 10)  # every test clip's 2 segments
    # the clip logits are the vote (default: mean of logits) of the segment logits saved beside them
    np.testing.assert_allclose(saved["segment_logits"].mean(axis=1), saved["logits"], rtol=1e-4, atol=1e-4)


def test_malformed_recipe_exits_before_any_output(tmp_path, image_recipe):
    recipe = tmp_path / "x.yaml"
    recipe.write_text(image_recipe.read_text().replace(str(image_recipe.parent / "out"), str(tmp_path / "out")))
    proc = run_script("--recipe", str(recipe), "--set", "loss.temperature=-1")
    assert proc.returncode == 2
    assert f"{recipe}: loss.temperature must be > 0, got -1" in proc.stderr
    assert not (tmp_path / "out").exists()
    proc = run_script("--recipe", str(recipe), "--set", "loss.smothing=0.1")
    assert proc.returncode == 2 and "loss.smothing" in proc.stderr


class CrashAfterFirstCheckpoint:
    """A TrainerCallback that kills the run right after the first checkpoint is written."""

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt("simulated crash after the first checkpoint")


def test_resume_after_crash_matches_uninterrupted_run(tmp_path, image_recipe):
    from lsr_hf.job.train import run

    whole = load_recipe(image_recipe, [f"training.output_dir={tmp_path / 'whole'}"])
    crashed = load_recipe(image_recipe, [f"training.output_dir={tmp_path / 'crashed'}"])
    reference = run(whole)
    with pytest.raises(KeyboardInterrupt):
        run(crashed, callbacks=[CrashAfterFirstCheckpoint()])
    assert [p.name for p in (tmp_path / "crashed").glob("checkpoint-*")] == ["checkpoint-2"]
    assert not (tmp_path / "crashed" / "results.json").exists()
    resumed = run(crashed, resume=True)
    assert resumed["resumed_from"].endswith("checkpoint-2")
    for key in ("test_accuracy", "test_loss", "test_nll", "test_ece", "eval_loss"):
        assert resumed["metrics"][key] == pytest.approx(reference["metrics"][key], rel=1e-5, abs=1e-6), key


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, image_recipe):
    from lsr_hf.job.train import run

    recipe = load_recipe(image_recipe, [f"training.output_dir={tmp_path / 'none'}"])
    with pytest.raises(ValueError, match="no checkpoint"):
        run(recipe, resume=True)


def test_two_process_ddp_with_torchrun(tmp_path, image_recipe):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    proc = run_script(
        "--recipe", str(image_recipe), "--set", f"training.output_dir={out}",
        launcher=(str(torchrun), "--standalone", "--nproc_per_node", "2"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = read_results(out)
    assert results["environment"]["world_size"] == 2
    state = json.loads((out / "trainer_state.json").read_text())
    # 30 images over 2 ranks × batch 16: 1 step an epoch (2 in one process), 2 epochs
    assert state["global_step"] == 2
    assert results["dataset"]["sizes"]["test"] == 40
    assert 0.0 <= results["metrics"]["test_accuracy"] <= 1.0


def test_hub_push_is_checked_before_the_output_folder_or_the_data(tmp_path, image_recipe, monkeypatch):
    """hub.push in offline mode (the tests' HF_HUB_OFFLINE=1) stops the job before anything is written or loaded;
    the push itself, against a fake Hub, is in tests/test_hub.py."""
    from lsr_hf.job.hub import HubError
    from lsr_hf.job.train import run

    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    recipe = load_recipe(
        image_recipe,
        [f"training.output_dir={tmp_path / 'push'}", "training.num_train_epochs=1", "hub.push=true",
         "hub.repo_id=someone/tiny-ostc", "hub.private=true", f"data.path={tmp_path / 'no_data'}"],
    )  # fmt: skip
    with pytest.raises(HubError, match=r"^hub\.push: offline mode is on"):
        run(recipe)
    assert not (tmp_path / "push").exists()


def test_job_trainer_loads_uint8_and_transforms_on_the_device(image_recipe):
    """The job's loaders give uint8 batches; after Trainer's move to the device, training batches get DESIGN §4's
    augmentation and evaluation batches exactly the eval collator's normalisation."""
    from lsr_hf.data import prepare_data
    from lsr_hf.data.image import ImageCollator
    from lsr_hf.job.train import build_trainer

    recipe = load_recipe(image_recipe)
    data = prepare_data(recipe.data)
    trainer = build_trainer(recipe, data)
    loader_batch = next(iter(trainer.get_train_dataloader()))
    assert loader_batch["pixel_values"].dtype == torch.uint8 and loader_batch["labels"].dtype == torch.int64
    assert isinstance(trainer.get_eval_dataloader().collate_fn.collator, ImageCollator)
    items = [data.validation[i] for i in range(8)]
    raw = torch.stack([item["pixel_values"] for item in items])
    expected = data.eval_collator(items)["pixel_values"]

    trainer.model.eval()
    evaluated = trainer._prepare_inputs({"pixel_values": raw.clone(), "labels": torch.zeros(8, dtype=torch.long)})
    assert torch.equal(evaluated["pixel_values"], expected)

    trainer.model.train()
    torch.manual_seed(0)
    trained = trainer._prepare_inputs({"pixel_values": raw.clone(), "labels": torch.zeros(8, dtype=torch.long)})
    torch.manual_seed(0)
    assert torch.equal(trained["pixel_values"], data.train_collator.transform(raw.clone()))
    assert not torch.equal(trained["pixel_values"], expected)  # padding 4 + flip: augmented


def test_lone_last_training_example_is_dropped_not_a_batchnorm_crash(tmp_path, image_recipe):
    """30 training images at batch 29 would end each epoch on a batch of one, which BatchNorm cannot train on: the
    job's training loader drops it (one step an epoch, all 29-image batches), evaluation keeps every example."""
    from lsr_hf.data import prepare_data
    from lsr_hf.job.train import build_trainer

    recipe_dict = yaml.safe_load(image_recipe.read_text())
    recipe_dict["training"].update(
        per_device_train_batch_size=29, num_train_epochs=1, eval_strategy="no", save_strategy="no",
        output_dir=str(tmp_path / "out"),
    )  # fmt: skip
    recipe_dict["schedule"] = {"milestones": []}
    path = tmp_path / "lone.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    recipe = load_recipe(path)
    data = prepare_data(recipe.data)
    assert len(data.train) == 30 and len(data.validation) == 10
    trainer = build_trainer(recipe, data)
    assert [len(batch["labels"]) for batch in trainer.get_train_dataloader()] == [29]
    assert trainer.args.dataloader_drop_last is False  # restored: evaluation sees every example
    assert sum(len(batch["labels"]) for batch in trainer.get_eval_dataloader()) == 10
    result = trainer.train()
    assert trainer.state.global_step == 1 and np.isfinite(result.training_loss)
