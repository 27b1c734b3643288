"""Datasets without a built-in spec (a user's image folder, audio folder, parquet folder, a Hub id) through the two
generic recipes; the clean exit when the data cannot be reached or holds nothing; FSDD (real audio) end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import ClassLabel, DatasetDict, Features, Image, Value
from PIL import Image as PILImage
from transformers import AutoConfig

from data_fixtures import class_images, png_bytes, tone, wav_bytes
from lsr_hf.data import DataConfig, prepare_data
from lsr_hf.data.errors import DataSourceError
from lsr_hf.data.image import channel_stats
from lsr_hf.recipe import RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
FSDD = REPO.parent / "shared" / "data" / "fsdd"
COLOURS = ("red", "green", "blue")
# few, small steps: the tests check the plumbing, not the accuracy (except where said)
FAST = [
    "--set", "training.num_train_epochs=2", "--set", "training.per_device_train_batch_size=8",
    "--set", "training.use_cpu=true", "--set", "training.dataloader_num_workers=0",
    "--set", "training.save_strategy='no'", "--set", "training.eval_strategy='no'",
    "--set", "training.disable_tqdm=true", "--set", "model.name='test_resnet'",
    "--set", "data.validation_fraction=0.25",  # >= 1 example per class carved from these tiny sets
]  # fmt: skip


def run_train(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=environ, cwd=REPO
    )


def write_image_folder(root: Path, n_per_class: int, sizes=((12, 12),), splits=("train", "test")) -> Path:
    """<root>/<split>/<colour>/<i>.png, images of varying sizes (resized by data.image_size)."""
    images, labels = class_images(len(COLOURS), n_per_class * len(splits), 12, seed=0)
    for i, (image, label) in enumerate(zip(images, labels)):
        split = splits[i % len(splits)]
        folder = root / split / COLOURS[label]
        folder.mkdir(parents=True, exist_ok=True)
        h, w = sizes[i % len(sizes)]
        PILImage.fromarray(image).resize((w, h)).save(folder / f"{i}.png")
    return root


def write_audio_folder(root: Path, n_per_class: int, rate: int, seconds=(0.3, 0.6), splits=("train", "test")) -> Path:
    """<root>/<split>/<class>/<i>.wav: tones of several lengths, all shorter than a 1 s segment."""
    rng = np.random.default_rng(0)
    for split in splits:
        for label, name in enumerate(("low", "mid", "high")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                wave = tone(label * 3, seconds[i % len(seconds)], rate, rng)
                (folder / f"{i}.wav").write_bytes(wav_bytes(wave, rate))
    return root


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


# ------------------------------------------------------------------------------------------ the data, no training


def test_image_folder_gets_classes_splits_size_and_its_own_statistics(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", n_per_class=6, sizes=((12, 12), (10, 14)))
    data = prepare_data(DataConfig(name="auto", path=str(root), image_size=8, validation_fraction=0.2))
    assert data.modality == "image" and data.class_names == ("blue", "green", "red")  # sorted folder names
    assert (len(data.train), len(data.validation), len(data.test)) == (14, 4, 18)
    assert data.image_size == (8, 8) and data.train.images.shape[2:] == (8, 8)
    # the statistics are the training split's own: an independent float64 numpy computation
    pixels = data.train.images.numpy().astype(np.float64) / 255.0
    np.testing.assert_allclose(data.mean, pixels.mean(axis=(0, 2, 3)), atol=1e-4)
    np.testing.assert_allclose(data.std, pixels.std(axis=(0, 2, 3)), atol=1e-4)
    assert data.train_collator.mean.flatten().tolist() == pytest.approx(list(data.mean))
    # a recipe's mean/std win
    fixed = prepare_data(
        DataConfig(name="auto", path=str(root), image_size=8, mean=[0.5] * 3, std=[0.25] * 3, validation_fraction=0.2)
    )
    assert fixed.mean == (0.5, 0.5, 0.5) and fixed.std == (0.25, 0.25, 0.25)


def test_channel_stats_of_a_constant_channel_has_unit_std() -> None:
    import torch

    images = torch.zeros((2, 3, 2, 2), dtype=torch.uint8)
    images[:, 0] = 255
    images[0, 1] = 51  # channel 1: half 0.2, half 0 -> mean 0.1, std 0.1
    mean, std = channel_stats(images)
    assert mean == pytest.approx((1.0, 0.1, 0.0)) and std == pytest.approx((1.0, 0.1, 1.0))


def test_audio_folder_keeps_the_files_rate_and_pads_short_clips(tmp_path: Path) -> None:
    root = write_audio_folder(tmp_path / "clips", n_per_class=4, rate=4000)
    data = prepare_data(
        DataConfig(name="auto", path=str(root), sample_rate=None, segment_seconds=1.0, validation_fraction=0.25)
    )
    assert data.modality == "audio" and data.class_names == ("high", "low", "mid")
    assert (data.sample_rate, data.segment_length, data.num_segments) == (4000, 4000, 1)
    clip = data.test[0]["input_values"]  # (S, T) = (1, 4000): a 0.3 s or 0.6 s clip, then zeros
    assert clip.shape == (1, 4000)
    real = int(data.test.decoded.lengths[0])
    assert real in (1200, 2400) and bool((clip[0, real:] == 0).all()) and float(clip[0, :real].abs().max()) > 0.1
    # a rate set in the recipe resamples
    assert prepare_data(DataConfig(name="auto", path=str(root), sample_rate=2000, validation_fraction=0.25)).sample_rate == 2000


def test_parquet_folder_with_integer_labels_and_mapped_columns(tmp_path: Path) -> None:
    images, labels = class_images(3, 8, 8, seed=1)
    folder = tmp_path / "pq" / "data"
    folder.mkdir(parents=True)
    features = Features({"picture": Image(), "kind": Value("int64"), "note": Value("string")})
    table = pa.table(
        {
            "picture": [{"bytes": png_bytes(im), "path": None} for im in images],
            "kind": labels.tolist(),
            "note": ["x"] * len(labels),
        },
        schema=features.arrow_schema,
    )
    pq.write_table(table, folder / "train-00000-of-00001.parquet")
    data = prepare_data(DataConfig(name="auto", path=str(tmp_path / "pq"), label_column="kind", validation_fraction=0.25))
    assert data.class_names == ("0", "1", "2") and data.modality == "image"
    assert len(data.train) + len(data.validation) + len(data.test) == 24
    with pytest.raises(ValueError, match=r"data.label_column: no column .* picture, kind, note"):
        prepare_data(DataConfig(name="auto", path=str(tmp_path / "pq")))


def test_hub_id_without_a_spec_reads_classes_from_the_class_label(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = class_images(2, 6, 8, seed=2)
    features = Features({"image": Image(), "label": ClassLabel(names=["cat", "dog"])})
    rows = {"image": [{"bytes": png_bytes(im), "path": None} for im in images], "label": labels.tolist()}
    from datasets import Dataset

    hub = DatasetDict({"train": Dataset.from_dict(rows, features=features), "test": Dataset.from_dict(rows, features=features)})
    asked = []
    monkeypatch.setattr("lsr_hf.data.load.load_dataset", lambda name, *a, **k: asked.append(name) or hub)
    data = prepare_data(DataConfig(name="someone/pets", validation_fraction=0.25))
    assert asked == ["someone/pets"] and data.class_names == ("cat", "dog") and len(data.test) == 12


def test_auto_without_a_path_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"data\.path must be set when name is 'auto'.*data\.name=<Hub dataset id>"):
        load_recipe(REPO / "recipes" / "imagefolder_ostc.yaml")
    proc = run_train("--recipe", "recipes/audiofolder_ostc.yaml", "--set", f"training.output_dir={tmp_path / 'o'}")
    assert proc.returncode == 2 and "data.path must be set" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------- clean failures


@pytest.mark.parametrize("recipe", ["recipes/gtzan_ostc.yaml", "recipes/cifar100_ostc.yaml"])
def test_offline_hub_dataset_exits_2_with_what_to_do_and_no_output(tmp_path: Path, recipe: str) -> None:
    out = tmp_path / "out"
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = run_train("--recipe", recipe, "--set", f"training.output_dir={out}", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr
    assert "could not load dataset" in err and "reason: ConnectionError" in err and "OfflineModeIsEnabled" in err
    assert "--set data.path=/local/copy" in err and "hf auth login" in err
    assert "Traceback" not in err and not out.exists()
    # --debug shows the traceback instead
    debug = run_train("--recipe", recipe, "--set", f"training.output_dir={out}", "--debug", env=env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "DataSourceError" in debug.stderr
    assert not out.exists()


def test_path_with_nothing_usable_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no data here")
    out = tmp_path / "out"
    proc = run_train("--recipe", "recipes/imagefolder_ostc.yaml", "--set", f"data.path={empty}",
                     "--set", f"training.output_dir={out}")  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "holds no usable dataset" in proc.stderr and "no parquet, image" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
    with pytest.raises(DataSourceError, match=r"does not exist"):
        prepare_data(DataConfig(name="auto", path=str(tmp_path / "missing")))


# ------------------------------------------------------------------------------ training through the recipes


def test_image_folder_trains_through_the_generic_recipe(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", n_per_class=6, sizes=((12, 12), (16, 10)))
    out = tmp_path / "out"
    proc = run_train("--recipe", "recipes/imagefolder_ostc.yaml", "--set", f"data.path={root}",
                     "--set", "data.image_size=16", "--set", f"training.output_dir={out}", *FAST)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = results_of(out)
    assert results["dataset"]["class_names"] == ["blue", "green", "red"] and results["dataset"]["sizes"]["test"] == 18
    assert AutoConfig.from_pretrained(out).id2label == {0: "blue", 1: "green", 2: "red"}


def test_audio_folder_trains_through_the_generic_recipe(tmp_path: Path) -> None:
    root = write_audio_folder(tmp_path / "clips", n_per_class=5, rate=4000)  # 11 training clips: no batch of 1
    out = tmp_path / "out"
    proc = run_train("--recipe", "recipes/audiofolder_ostc.yaml", "--set", f"data.path={root}",
                     "--set", f"training.output_dir={out}", *FAST)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["sample_rate"] == 4000 and config["id2label"] == {"0": "high", "1": "low", "2": "mid"}


@pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD not found at {FSDD} (../shared/data is only on the dev machines)")
def test_fsdd_slice_end_to_end(tmp_path: Path) -> None:
    """Real audio: a 600-clip slice of FSDD's official train split, its whole test split, 8 kHz kept."""
    out = tmp_path / "out"
    proc = run_train("--recipe", "recipes/audiofolder_ostc.yaml", "--set", f"data.path={FSDD}",
                     "--set", "data.max_train_samples=600", "--set", f"training.output_dir={out}",
                     "--set", "training.num_train_epochs=5", "--set", "training.save_strategy='no'",
                     "--set", "training.eval_strategy='no'", "--set", "training.disable_tqdm=true",
                     "--set", "training.dataloader_num_workers=0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = results_of(out)
    assert results["dataset"]["class_names"] == [str(d) for d in range(10)]
    assert results["dataset"]["sizes"]["test"] == 300 and sum(results["dataset"]["num_skipped"].values()) == 0
    assert json.loads((out / "config.json").read_text())["sample_rate"] == 8000
    assert results["metrics"]["test_accuracy"] > 0.5  # chance is 0.1: it learns from 600 real clips
