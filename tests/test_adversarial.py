"""Bad input, tried as a user would: each case gets its exact message and exit status from ``scripts/train.py``,
and nothing half-written is left behind. docs/RELIABILITY.md has the same cases as a table.

Exit status: 0 a finished (or already finished) run; 2 bad input found before training (recipe, data, output
folder), with ``error: <message>`` and no traceback; 3 a diverged training loss. Most cases call the script's
``main`` in this process (same code path as the command line, without a second interpreter's start-up); the
SIGKILL case runs it as a subprocess. The recipe loader's finer points are tested in test_recipe.py, the data
loader's in test_data.py; here each case is checked end to end at the command line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
import yaml
from datasets import ClassLabel, Features, Image, Value
from PIL import Image as PILImage
from transformers import TrainingArguments  # noqa: F401  (now: transformers' log handler takes the session's
# stderr, not the stream of the first test that imports it, which capsys closes after that test)

from data_fixtures import class_images, png_bytes, tone, wav_bytes
from lsr_hf.data.config import DataConfig
from lsr_hf.data.specs import get_spec

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
CIFAR10 = get_spec("cifar10").class_names
GTZAN = get_spec("gtzan").class_names
TRAINING = dict(
    max_steps=6, per_device_train_batch_size=8, per_device_eval_batch_size=32, learning_rate=0.05, optim="sgd",
    eval_strategy="no", save_strategy="steps", save_steps=2, save_total_limit=1, logging_steps=1, report_to="none",
    use_cpu=True, seed=0, disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False,
    logging_nan_inf_filter=False,
)  # fmt: skip
LOSS = dict(method="lsr_os_tc", alpha=0.5, temperature=2.0, correct_prob=0.3)
IMAGE_MODEL = dict(name="test_resnet")
AUDIO_MODEL = dict(name="test_resnet", n_mels=16, n_fft=128, hop_length=64)
RUN_OUTPUTS = ("results.json", "README.md", "model.safetensors", "test_predictions.npz")


def _load_script():
    spec = importlib.util.spec_from_file_location("lsr_hf_train_script", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_script = _load_script()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each case runs in its own empty folder, so recipe paths and output folders in messages are short. The log
    handler a run adds (``logging.basicConfig``) writes to this test's captured stderr: it goes with the test."""
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield tmp_path
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``scripts/train.py ARGV`` as the command line runs it: (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = train_script.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The ``error: ...`` line the script printed (the log lines before it are not part of the message)."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def image_data(root: Path, **extra) -> dict:
    """The data section for an ``image_parquet`` folder (40 training images: 10 of them held out for validation)."""
    return {"name": "cifar10", "path": str(root), "validation_fraction": 0.25, **extra}


def recipe(path: str | Path, data: dict, model: dict = IMAGE_MODEL, **sections) -> str:
    body = {"data": data, "model": model, "loss": LOSS, "training": {**TRAINING, "output_dir": "out"}}
    for name, values in sections.items():
        body[name] = {**body.get(name, {}), **values}
    Path(path).write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------------------ data files


def image_parquet(
    root: Path, train: list | None = None, test: list | None = None, n_per_class: int = 4, size: int = 16
) -> Path:
    """A cifar10-layout parquet folder (``train-*.parquet``, ``test-*.parquet``, columns img/label) of 16x16
    class-coloured images; ``train``/``test``: extra (bytes, label) rows appended to that split."""
    root.mkdir(parents=True, exist_ok=True)
    schema = Features({"img": Image(), "label": ClassLabel(names=list(CIFAR10))}).arrow_schema
    for i, (split, extra) in enumerate((("train", train), ("test", test))):
        images, labels = class_images(10, n_per_class, size, seed=i)
        rows = [(png_bytes(im), int(label)) for im, label in zip(images, labels)] + list(extra or [])
        table = pa.table(
            {"img": [{"bytes": b, "path": None} for b, _ in rows], "label": [label for _, label in rows]}, schema=schema
        )
        pq.write_table(table, root / f"{split}-00000-of-00001.parquet")
    return root


def label_parquet(root: Path, labels: list, feature) -> Path:
    """A one-file parquet folder of 20 images whose label column holds ``labels`` (cycled) as ``feature``."""
    root.mkdir(parents=True, exist_ok=True)
    images, _ = class_images(10, 2, 16, seed=0)
    values = [labels[i % len(labels)] for i in range(len(images))]
    schema = Features({"img": Image(), "label": feature}).arrow_schema
    table = pa.table({"img": [{"bytes": png_bytes(im), "path": None} for im in images], "label": values}, schema=schema)
    pq.write_table(table, root / "train-00000-of-00001.parquet")
    return root


def float_wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, sample_rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def audio_parquet(root: Path, extra_train: list, rate: int = 4000, n_per_class: int = 3) -> Path:
    """A gtzan-layout parquet folder: 1 s tones at ``rate`` (``n_per_class`` a class in train, 1 in validation and
    test) plus ``extra_train`` (name, bytes, label) rows in train."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    schema = Features(
        {"audio": {"bytes": Value("binary"), "path": Value("string")}, "label": ClassLabel(names=list(GTZAN))}
    ).arrow_schema
    for split, n in (("train", n_per_class), ("validation", 1), ("test", 1)):
        rows = [
            (f"{GTZAN[c]}.{j}.wav", wav_bytes(tone(c, 1.0, rate, rng), rate), c) for c in range(10) for j in range(n)
        ]
        rows += extra_train if split == "train" else []
        table = pa.table(
            {"audio": [{"bytes": b, "path": name} for name, b, _ in rows], "label": [c for _, _, c in rows]},
            schema=schema,
        )
        pq.write_table(table, root / f"{split}-00000-of-00001.parquet")
    return root


# ------------------------------------------------------------------------------------------------ recipes


RECIPE_CASES = [
    # (case, recipe text, --set overrides, exact message after "error: r.yaml: ")
    ("malformed YAML", "data: {name: demo\nmodel: {}\n", (),
     "not valid YAML: while parsing a flow mapping"),
    ("unknown top-level key", "trainig: {max_steps: 1}\n", (),
     "unknown top-level key 'trainig' (did you mean training?); a recipe has the sections data, model, loss, "
     "training, schedule, hub and an optional extends"),
    ("typo in data", "data: {nmae: demo}\n", (),
     "unknown key data.nmae (did you mean data.name?); data has: "
     + ", ".join(f.name for f in dataclasses.fields(DataConfig))),
    ("typo in loss, from --set", "loss: {method: lsr}\n", ("loss.smothing=0.1",),
     "unknown key loss.smothing; loss has: method, alpha, temperature, correct_prob, teacher_temperature, "
     "multiplier, use_triton_kernel (from --set)"),
    ("typo in training", "training: {learnig_rate: 0.1}\n", (),
     "unknown key training.learnig_rate (did you mean training.learning_rate?); the training keys are the fields "
     "of transformers.TrainingArguments"),
    ("typo in schedule", "schedule: {milestone: [2]}\n", (),
     "unknown key schedule.milestone (did you mean schedule.milestones?); schedule has: milestones, gamma"),
    ("typo in hub", "hub: {pusj: true}\n", (),
     "unknown key hub.pusj (did you mean hub.push?); hub has: push, repo_id, private"),
    ("typo in model", "model: {nmae: resnet18}\n", (),
     "unknown key model.nmae (did you mean model.name or model.n_mels?); model has: name, pretrained, drop_rate, "
     "timm_kwargs, channels_last, n_mels, n_fft, hop_length"),
    ("wrong type", "loss: {alpha: high}\n", (),
     "loss.alpha must be a number, got 'high' (a string)"),
    ("wrong type in training", "training: {per_device_train_batch_size: 1.5}\n", (),
     "training.per_device_train_batch_size must be an integer, got 1.5 (a number)"),
    ("out of range", "loss: {temperature: -1}\n", (),
     "loss.temperature must be > 0, got -1"),
    ("out of range skipped fraction", "data: {max_skipped_fraction: 2}\n", (),
     "data.max_skipped_fraction must be in [0, 1], got 2"),
    ("not a mapping", "- data\n- model\n", (),
     "a recipe must be a mapping of sections (data, model, loss, training, schedule, hub), got a list"),
    ("extends itself", "extends: r.yaml\nloss: {alpha: 0.1}\n", (),
     "extends cycle: r.yaml -> r.yaml"),
    # issue 31: each of these used to train (or to fail with a traceback once the data was loaded)
    ("empty file", "", (),
     "the recipe is empty; a recipe has the sections data, model, loss, training, schedule, hub and an optional "
     "extends (e.g. extends: demo_ostc.yaml; see the recipes/ folder)"),
    ("only comments", "# to do\n", (), "the recipe is empty; "),
    ("duplicate key", "loss:\n  alpha: 0.1\n  alpha: 0.2\n", (),
     "key 'alpha' is given twice (lines 2 and 3); YAML would keep only the last one: remove one of them"),
    ("duplicate section", "loss: {alpha: 0.1}\nloss: {alpha: 0.2}\n", (), "key 'loss' is given twice (lines 1 and 2)"),
    ("no training length", "data: {name: demo}\n", ("training.num_train_epochs=-1", "training.max_steps=-1"),
     "training.num_train_epochs must be > 0 when training.max_steps is not set (it is -1), got -1: the run would "
     "train 0 steps; set one of them (from --set)"),
    ("kd without a teacher", "loss: {method: kd}\n", (),
     "loss.method 'kd' needs a teacher model, which a recipe cannot give (kd is for code: OSTCTrainer(..., "
     "teacher_model=...)); choose one of ce, lsr, tfkd, lsr_os, lsr_os_tc"),
    ("correct_prob below 1/K", "data: {name: demo}\nloss: {method: lsr_os_tc}\n", ("loss.correct_prob=0.05",),
     "loss.correct_prob must be in [1/K, 1) = [0.1, 1) for K = 10 classes, got 0.05 (demo) (from --set)"),
    ("unknown model", "model: {name: resnet10tt}\n", (),
     "model.name 'resnet10tt' is not a timm model (did you mean resnet10t, "),
    ("batch size 0", "training: {per_device_train_batch_size: 0}\n", (),
     "training.per_device_train_batch_size must be an integer in [1, 2147483647], got 0"),
    ("batch size 1e20", "training: {per_device_train_batch_size: 100000000000000000000}\n", (),
     "training.per_device_train_batch_size must be an integer in [1, 2147483647], got 100000000000000000000"),
    ("NaN learning rate", "training: {learning_rate: .nan}\n", (), "training.learning_rate must be a finite number, got nan"),
    ("zero learning rate", "training: {learning_rate: 0}\n", (), "training.learning_rate must be > 0, got 0"),
    ("save_steps 0", "training: {save_strategy: steps, save_steps: 0}\n", (),
     "training.save_steps must be > 0 (a number of steps, or a fraction < 1 of the training steps), got 0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "overrides", "message"), [c[1:] for c in RECIPE_CASES], ids=[c[0] for c in RECIPE_CASES]
)
def test_bad_recipes_exit_2_with_the_file_and_key(capsys, in_tmp, text, overrides, message) -> None:
    Path("r.yaml").write_text(text, encoding="utf-8")
    sets = [arg for item in overrides for arg in ("--set", item)]
    code, out, err = cli(capsys, "--recipe", "r.yaml", *sets, "--set", "training.output_dir=out")
    assert code == 2
    assert error_line(err).startswith(f"error: r.yaml: {message}")
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in in_tmp.iterdir()) == ["r.yaml"]  # no output folder, nothing else


# --------------------------------------------------------------------------------------------------- data


def _labels_case(kind: str, root: Path) -> tuple[dict, str]:
    source = f"the train split of {root}"
    column = f"column 'label' (data.label_column) in {source}"
    if kind == "out of range":
        return {"labels": [0, 12], "feature": Value("int64")}, f"{column} must hold class ids in [0, 10), got [12]"
    if kind == "negative":
        return {"labels": [0, -3], "feature": Value("int64")}, f"{column} must hold class ids in [0, 10), got [-3]"
    return (
        {"labels": ["cat", "zebra"], "feature": Value("string")},
        f"{column} holds names that are not classes of the dataset: zebra; expected one of: {', '.join(CIFAR10)}",
    )


@pytest.mark.parametrize("kind", ["out of range", "negative", "non-class strings"])
def test_bad_labels_exit_2_before_any_output(capsys, in_tmp, kind) -> None:
    root = in_tmp / "data"
    spec, message = _labels_case(kind, root)
    label_parquet(root, **spec)
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", image_data(root)))
    assert (code, error_line(err)) == (2, f"error: {message}")
    assert not (in_tmp / "out").exists()


def test_missing_column_exits_2_naming_the_recipe_key(capsys, in_tmp) -> None:
    root = image_parquet(in_tmp / "data")
    code, _, err = cli(
        capsys, "--recipe", recipe("r.yaml", image_data(root, input_column="image"))
    )
    assert code == 2
    assert error_line(err) == (
        f"error: column 'image' (data.input_column) not found in the train split of {root}; its columns are: img, "
        "label. Set data.input_column to the column that holds the image."
    )
    assert not (in_tmp / "out").exists()


def test_empty_split_exits_2(capsys, in_tmp) -> None:
    root = image_parquet(in_tmp / "data")
    file = root / "test-00000-of-00001.parquet"
    pq.write_table(pq.read_table(file).slice(0, 0), file)
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", image_data(root)))
    assert (code, error_line(err)) == (
        2, f"error: {file} has no rows: an empty split cannot be trained on; remove the file or fill it"
    )
    assert not (in_tmp / "out").exists()


def test_a_file_that_is_not_parquet_exits_2(capsys, in_tmp) -> None:
    root = image_parquet(in_tmp / "data")
    (root / "test-00000-of-00001.parquet").write_bytes(b"not parquet at all")
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", image_data(root)))
    assert code == 2
    assert error_line(err) == (
        f"error: {root / 'test-00000-of-00001.parquet'} is not a readable parquet file: Parquet magic bytes not "
        "found in footer. Either the file is corrupted or this is not a parquet file."
    )
    assert not (in_tmp / "out").exists()


def test_a_split_of_only_undecodable_images_exits_2_whatever_the_limit(capsys, in_tmp) -> None:
    garbage = [(b"x", c) for c in range(10)] * 4
    root = image_parquet(in_tmp / "data", n_per_class=0, test=corrupt_images(), train=garbage)
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", image_data(root, max_skipped_fraction=1.0)))
    assert (code, error_line(err)) == (
        2,
        "error: the train split: none of its 30 images could be used (row 0: cannot identify image file; row 1: "
        "cannot identify image file; row 2: cannot identify image file; row 3: cannot identify image file; row 4: "
        "cannot identify image file; ...); check data.path / data.input_column",
    )


def test_a_split_that_loads_empty_exits_2(capsys, in_tmp, monkeypatch) -> None:
    """A split that comes out of loading with no rows (e.g. an empty split of a Hub dataset)."""
    import lsr_hf.data.prepare
    from lsr_hf.data.load import load_raw_splits

    def empty_test(cfg):
        raw = load_raw_splits(cfg)
        raw["test"] = raw["test"].select([])
        return raw

    monkeypatch.setattr(lsr_hf.data.prepare, "load_raw_splits", empty_test)
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", {"name": "demo"}))
    assert (code, error_line(err)) == (2, "error: the test split of demo is empty: it has no rows")
    assert not (in_tmp / "out").exists()


def corrupt_images() -> list[tuple[bytes, int]]:
    """Three rows PIL cannot decode: garbage bytes, a truncated PNG, an empty file."""
    good = png_bytes(np.full((16, 16, 3), 200, np.uint8))
    return [(b"\x89garbage" * 8, 1), (good[: len(good) // 2], 2), (b"", 3)]


def converted_images() -> list[tuple[bytes, int]]:
    """Rows that decode but are not 16x16 RGB: greyscale, RGBA, palette, CMYK (JPEG), 16-bit grey, 20x12."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    cmyk = io.BytesIO()
    PILImage.fromarray(rgb).convert("CMYK").save(cmyk, format="JPEG")
    return [
        (png_bytes(rgb[..., 0]), 0),
        (png_bytes(np.dstack([rgb, rgb[..., :1]])), 1),
        (_encode(PILImage.fromarray(rgb).convert("P")), 2),
        (cmyk.getvalue(), 3),
        (_encode(PILImage.fromarray(rgb[..., 0].astype(np.uint16) * 257)), 4),
        (png_bytes(rng.integers(0, 256, (20, 12, 3), dtype=np.uint8)), 5),
    ]


def _encode(image: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_corrupt_images_over_the_limit_exit_2(capsys, in_tmp) -> None:
    """3 undecodable rows of 40 + 3 (7%) in the test split: more than the default 1%."""
    root = image_parquet(in_tmp / "data", test=corrupt_images())
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", image_data(root)))
    assert code == 2
    assert error_line(err) == (
        "error: the test split: 3 of 43 images (6.98%) could not be used, more than data.max_skipped_fraction=0.01 "
        "allows: row 40: cannot identify image file; row 41: image file is truncated (0 bytes not processed); row "
        "42: cannot identify image file. Fix or remove those files, or raise data.max_skipped_fraction to train on "
        "the rest"
    )
    assert not (in_tmp / "out").exists()


def test_corrupt_images_are_skipped_counted_and_odd_ones_converted(capsys, caplog, in_tmp) -> None:
    """Under data.max_skipped_fraction the run trains on the rest: the skipped rows are counted per split in
    results.json and named; greyscale/alpha/palette/CMYK/16-bit/odd-size rows are converted, not skipped."""
    root = image_parquet(in_tmp / "data", test=corrupt_images() + converted_images())
    path = recipe("r.yaml", image_data(root, max_skipped_fraction=0.1))
    code, out, err = cli(capsys, "--recipe", path, "--set", "training.max_steps=2")
    assert code == 0, err[-3000:]
    assert out.splitlines()[-1].startswith("test accuracy ")
    dataset = json.loads((in_tmp / "out" / "results.json").read_text())["dataset"]
    assert dataset["num_skipped"] == {"train": 0, "validation": 0, "test": 3}
    assert dataset["skipped"] == {
        "test": ["row 40: cannot identify image file", "row 41: image file is truncated (0 bytes not processed)",
                 "row 42: cannot identify image file"]
    }  # fmt: skip
    assert dataset["sizes"]["test"] == 40 + 6
    assert "the test split: skipped 3 of 49 images (6.12%): row 40" in caplog.text
    assert "the test split: resized 1 image(s) of another size to 16x16: row 48 (20x12)" in caplog.text


SHARED_CIFAR10 = REPO.parent / "shared" / "data" / "cifar10-jpeg" / "plain_text"


@pytest.mark.skipif(not SHARED_CIFAR10.is_dir(), reason="real CIFAR-10 copy not found at ../shared/data/cifar10-jpeg")
def test_real_cifar10_with_one_garbage_row_trains_and_counts_it(capsys, in_tmp) -> None:
    """The issue's case: 500 real CIFAR-10 rows and one of garbage bytes (0.2%) used to stop the run with
    PIL.UnidentifiedImageError; now the row is skipped, named and counted, and the run finishes."""
    root = in_tmp / "cifar10"
    root.mkdir()
    for split, n in (("train", 500), ("test", 100)):
        table = pq.read_table(SHARED_CIFAR10 / f"{split}-00000-of-00001.parquet").slice(0, n)
        if split == "train":
            garbage = pa.table({"img": [{"bytes": b"\x00garbage" * 10, "path": None}], "label": [3]}, table.schema)
            table = pa.concat_tables([table.slice(0, 250), garbage, table.slice(250)])
        pq.write_table(table, root / f"{split}-00000-of-00001.parquet")
    code, out, err = cli(capsys, "--recipe", recipe("r.yaml", {"name": "cifar10", "path": str(root)}),
                         "--set", "training.max_steps=2")  # fmt: skip
    assert code == 0, err[-3000:]
    dataset = json.loads((in_tmp / "out" / "results.json").read_text())["dataset"]
    assert sum(dataset["num_skipped"].values()) == 1 and dataset["num_skipped"]["test"] == 0
    (split, notes), = dataset["skipped"].items()
    assert notes[0].endswith(": cannot identify image file")
    assert dataset["sizes"]["train"] + dataset["sizes"]["validation"] == 500


def test_converted_images_match_pil_conversions() -> None:
    """The converted rows equal PIL's own conversion to RGB (16-bit grey: scaled by 1/257)."""
    from datasets import Dataset

    from lsr_hf.data.image import decode_images

    rows = converted_images()
    cells = [{"bytes": b, "path": None} for b, _ in rows]
    ds = Dataset.from_dict({"image": cells}, features=Features({"image": Image()}))
    decoded = decode_images(ds, size=(16, 16))
    got = decoded.images.permute(0, 2, 3, 1).numpy()
    for k, (data, _) in enumerate(rows[:4]):
        expected = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGBA" if k == 2 else "RGB").convert("RGB"))
        np.testing.assert_array_equal(got[k], expected)
    grey = np.asarray(PILImage.open(io.BytesIO(rows[0][0])))
    np.testing.assert_array_equal(got[4], np.repeat(grey[..., None], 3, axis=2))  # the 16-bit copy of row 0
    assert decoded.skipped == [] and decoded.resized == 1


def special_clips(rate: int = 4000) -> list[tuple[str, bytes, int]]:
    """A stereo clip, a 0.1 s clip, an 8 kHz clip (all decodable) and two that are not: garbage and a NaN."""
    rng = np.random.default_rng(2)
    nan = tone(4, 1.0, rate, rng)
    nan[100] = np.nan
    return [
        ("stereo.wav", wav_bytes(tone(1, 1.0, rate, rng, channels=2), rate), 1),
        ("short.wav", wav_bytes(tone(2, 0.1, rate, rng), rate), 2),
        ("8khz.wav", wav_bytes(tone(3, 1.0, 8000, rng), 8000), 3),
        ("garbage.wav", b"RIFF not really a wav", 5),
        ("nan.wav", float_wav_bytes(nan, rate), 4),
    ]


def test_audio_clips_stereo_short_8khz_train_and_corrupt_or_nan_ones_are_skipped(capsys, in_tmp) -> None:
    root = audio_parquet(in_tmp / "data", special_clips())
    data = {"name": "gtzan", "path": str(root), "sample_rate": 4000, "segment_seconds": 0.5}
    data["max_skipped_fraction"] = 0.1
    code, out, err = cli(capsys, "--recipe", recipe("r.yaml", data, AUDIO_MODEL), "--set", "training.max_steps=2")
    assert code == 0, err[-3000:]
    dataset = json.loads((in_tmp / "out" / "results.json").read_text())["dataset"]
    assert dataset["num_skipped"] == {"train": 2, "validation": 0, "test": 0}
    assert dataset["skipped"] == {
        "train": ["row 33 (garbage.wav): Format not recognised", "row 34 (nan.wav): 1 non-finite samples (NaN or inf)"]
    }
    # 33 clips of which 32 last 1 s (2 segments of 0.5 s; the stereo and 8 kHz ones included) and one 0.1 s (1)
    assert dataset["sizes"]["train"] == 32 * 2 + 1


def test_corrupt_audio_over_the_limit_exits_2(capsys, in_tmp) -> None:
    root = audio_parquet(in_tmp / "data", special_clips())
    data = {"name": "gtzan", "path": str(root), "sample_rate": 4000, "segment_seconds": 0.5}
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", data, AUDIO_MODEL))
    assert code == 2
    assert error_line(err) == (
        "error: the train split: 2 of 35 audio files (5.71%) could not be used, more than "
        "data.max_skipped_fraction=0.01 allows: row 33 (garbage.wav): Format not recognised; row 34 (nan.wav): 1 "
        "non-finite samples (NaN or inf). Fix or remove those files, or raise data.max_skipped_fraction to train on "
        "the rest"
    )
    assert not (in_tmp / "out").exists()


# ---------------------------------------------------------------------------------------------- divergence


def test_divergent_run_exits_3_saves_nothing_and_pushes_nothing(capsys, in_tmp, monkeypatch) -> None:
    """The issue's case: ``--set training.learning_rate=10000`` on the demo recipe (with a tiny net, and
    hub.push set): it stops within a few logging steps, before anything claims a result."""
    import lsr_hf.job.train

    pushed = []
    monkeypatch.setattr(lsr_hf.job.train, "_push_to_hub", lambda *args: pushed.append(args))
    monkeypatch.setattr(lsr_hf.job.train, "check_push", lambda *args, **kwargs: None)  # no Hub here: pass the preflight
    tiny = {
        "model.name": "test_resnet", "data.max_train_samples": 64, "data.max_eval_samples": 32,
        "training.per_device_train_batch_size": 8, "training.logging_steps": 1, "training.use_cpu": "true",
        "training.dataloader_num_workers": 0, "training.disable_tqdm": "true", "training.output_dir": "out",
        "hub.push": "true", "hub.repo_id": "someone/x", "training.learning_rate": 10000,
    }  # fmt: skip
    sets = [arg for key, value in tiny.items() for arg in ("--set", f"{key}={value}")]
    code, out, err = cli(capsys, "--recipe", str(REPO / "recipes" / "demo_ostc.yaml"), *sets)
    assert code == 3 and "test accuracy" not in out
    message = error_line(err)
    prefix, _, rest = message.partition(" (")
    step, loss = prefix.removeprefix("error: training diverged at step ").split(": loss = ")
    assert 2 <= int(step) <= 5  # within a few logging steps (logging_steps=1; step 1 is before any update)
    # the demo's loss (lsr_os_tc at the defaults: alpha 0.3, tau 2, a 0.5) for all-zero logits, by hand (w = tau^2):
    reference = 0.7 * np.log(10) + 0.3 * 2**2 * (0.5 * np.log(0.5 * 10) + 0.5 * np.log(0.5 / 9 * 10))
    assert not np.isfinite(float(loss)) or float(loss) > 100 * reference
    assert rest.startswith("not finite)") or rest.startswith(f"over 100x {reference:.4g}, the loss of a uniform")
    assert rest.endswith(
        "Likely cause: the learning rate is too high (training.learning_rate=10000): lower it, lengthen "
        "training.warmup_steps or clip gradients (training.max_grad_norm). No model, results.json or model card "
        "was written to 'out' and nothing was pushed; any checkpoints saved before this step were kept (train "
        "again with --overwrite, or --resume from the last one)"
    )
    assert pushed == []
    assert not any((in_tmp / "out" / name).exists() for name in RUN_OUTPUTS)
    assert "Traceback" not in err


# --------------------------------------------------------------------------------------- the output folder


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, str, dict]:
    """A finished tiny run (6 steps, a checkpoint every 2): (folder, recipe path, results)."""
    tmp = tmp_path_factory.mktemp("finished")
    root = image_parquet(tmp / "data")
    path = recipe(tmp / "r.yaml", image_data(root))
    body = yaml.safe_load(Path(path).read_text())
    body["training"]["output_dir"] = str(tmp / "out")
    Path(path).write_text(yaml.safe_dump(body))
    assert train_script.main(["--recipe", path]) == 0
    return tmp / "out", path, json.loads((tmp / "out" / "results.json").read_text())


def test_second_run_into_a_non_empty_folder_exits_2_before_loading_data(capsys, finished, monkeypatch) -> None:
    import lsr_hf.job.train

    out, path, _ = finished
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    monkeypatch.setattr(lsr_hf.job.train, "prepare_data", lambda cfg: pytest.fail("data loaded"))
    code, _, err = cli(capsys, "--recipe", path)
    assert (code, error_line(err)) == (
        2,
        f"error: training.output_dir={str(out)!r} already holds a finished run (results.json): pass --resume to "
        "continue it from its last complete checkpoint, or --overwrite to delete it and train again (or choose "
        "another training.output_dir)",
    )
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_resume_on_a_finished_run_exits_0_without_training(capsys, caplog, finished, monkeypatch) -> None:
    import lsr_hf.job.train

    out, path, results = finished
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    monkeypatch.setattr(lsr_hf.job.train, "prepare_data", lambda cfg: pytest.fail("data loaded"))
    code, stdout, err = cli(capsys, "--recipe", path, "--resume")
    assert code == 0
    assert f"training.output_dir={str(out)!r} holds a finished run of this recipe: nothing to resume" in caplog.text
    assert stdout.startswith(f"test accuracy {results['metrics']['test_accuracy']:.4f}")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before

    code, _, err = cli(capsys, "--recipe", path, "--resume", "--set", "loss.alpha=0.2")
    assert (code, error_line(err)) == (
        2,
        f"error: training.output_dir={str(out)!r} holds a finished run of another recipe (it differs in "
        "loss.alpha); pass --overwrite to delete it and train again, or choose another training.output_dir",
    )


def test_overwrite_deletes_the_earlier_run_and_trains_again(capsys, in_tmp) -> None:
    root = image_parquet(in_tmp / "data")
    path = recipe("r.yaml", image_data(root), training={"max_steps": 2})
    (in_tmp / "out" / "checkpoint-40").mkdir(parents=True)  # a stale checkpoint of an earlier, longer run
    (in_tmp / "out" / "results.json").write_text('{"metrics": {"test_accuracy": 0.99}, "recipe": {}}')
    (in_tmp / "out" / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, "--recipe", path)
    assert (code, error_line(err)) == (
        2,
        "error: training.output_dir='out' already holds a finished run (results.json): pass --resume to continue it "
        "from its last complete checkpoint, or --overwrite to delete it and train again (or choose another "
        "training.output_dir)",
    )
    code, _, err = cli(capsys, "--recipe", path, "--overwrite")
    assert code == 0, err[-3000:]
    assert sorted(p.name for p in (in_tmp / "out").glob("checkpoint-*")) == ["checkpoint-2"]
    assert json.loads((in_tmp / "out" / "results.json").read_text())["metrics"]["test_accuracy"] != 0.99
    assert (in_tmp / "out" / "notes.txt").read_text() == "mine"  # not a run's file: left alone


def test_read_only_output_folder_exits_2_before_loading_data(capsys, in_tmp, monkeypatch) -> None:
    import lsr_hf.job.outputs
    import lsr_hf.job.train

    monkeypatch.setattr(lsr_hf.job.train, "prepare_data", lambda cfg: pytest.fail("data loaded"))
    path = recipe("r.yaml", {"name": "demo"}, training={"output_dir": "locked/run"})
    locked = in_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: let the check see what an unprivileged user's would
        real_access = os.access
        monkeypatch.setattr(
            lsr_hf.job.outputs.os, "access", lambda p, mode: Path(p).resolve() != locked.resolve() and real_access(p, mode)
        )
    try:
        code, _, err = cli(capsys, "--recipe", path)
    finally:
        locked.chmod(0o755)
    assert (code, error_line(err)) == (
        2,
        "error: training.output_dir='locked/run' cannot be made: 'locked' is not writable; choose another "
        "training.output_dir or fix its permissions",
    )
    assert list(locked.iterdir()) == []

    Path("afile").write_text("")  # a path below a file cannot be made, root or not
    code, _, err = cli(capsys, "--recipe", path, "--set", "training.output_dir=afile/run")
    assert (code, error_line(err)) == (
        2,
        "error: training.output_dir='afile/run' cannot be made: 'afile' is a file, not a folder",
    )


def test_resume_without_a_complete_checkpoint_exits_2(capsys, in_tmp) -> None:
    path = recipe("r.yaml", {"name": "demo"})
    code, _, err = cli(capsys, "--recipe", path, "--resume")
    assert (code, error_line(err)) == (
        2,
        "error: --resume: no checkpoint to resume from: training.output_dir='out' does not exist; run without --resume",
    )
    (in_tmp / "out" / "checkpoint-2").mkdir(parents=True)  # killed while writing its first checkpoint
    (in_tmp / "out" / "checkpoint-2" / "model.safetensors").write_bytes(b"")
    (in_tmp / "out" / "recipe.yaml").write_text("# Resolved recipe (base recipes merged, ...) from: r.yaml\n")
    code, _, err = cli(capsys, "--recipe", path)
    assert (code, error_line(err)) == (
        2,
        "error: training.output_dir='out' already holds files (checkpoint-2, recipe.yaml): pass --resume to continue "
        "it from its last complete checkpoint, or --overwrite to delete it and train again (or choose another "
        "training.output_dir)",
    )
    code, _, err = cli(capsys, "--recipe", path, "--resume")
    assert (code, error_line(err)) == (
        2,
        "error: --resume: no complete checkpoint in training.output_dir='out' (only the partial checkpoint-2); pass "
        "--overwrite to delete it and train again",
    )


KILLER = """
import os, runpy, signal, sys
from transformers import Trainer

save = Trainer._save_optimizer_and_scheduler


def killed_mid_checkpoint(self, output_dir):  # the model of this checkpoint is written, the rest is not
    if self.state.global_step == {step}:
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, output_dir)


Trainer._save_optimizer_and_scheduler = killed_mid_checkpoint
sys.argv = [{script!r}, *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
"""


def test_kill_9_while_writing_a_checkpoint_then_resume_ends_with_the_uninterrupted_metrics(
    capsys, caplog, in_tmp, finished
) -> None:
    from transformers.trainer_utils import get_last_checkpoint

    _, reference_recipe, reference = finished
    path = recipe("r.yaml", yaml.safe_load(Path(reference_recipe).read_text())["data"])
    killer = in_tmp / "killer.py"
    killer.write_text(textwrap.dedent(KILLER).format(step=4, script=str(TRAIN_SCRIPT)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(
        [sys.executable, str(killer), "--recipe", path], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    out = in_tmp / "out"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (out / "checkpoint-4" / "model.safetensors").is_file()
    assert not (out / "checkpoint-4" / "trainer_state.json").exists()  # partial
    assert get_last_checkpoint(str(out)).endswith("checkpoint-4")  # what Trainer's own helper would resume from
    assert not (out / "results.json").exists()
    code, _, err = cli(capsys, "--recipe", path)
    assert (code, error_line(err)) == (
        2,
        "error: training.output_dir='out' already holds an unfinished run (last complete checkpoint: checkpoint-2): "
        "pass --resume to continue it from its last complete checkpoint, or --overwrite to delete it and train again "
        "(or choose another training.output_dir)",
    )

    code, _, err = cli(capsys, "--recipe", path, "--resume")
    assert code == 0, err[-3000:]
    assert "deleting partial checkpoint(s) checkpoint-4" in caplog.text
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["resumed_from"] == "out/checkpoint-2"
    for key in ("test_accuracy", "test_loss", "test_nll", "test_ece", "eval_loss", "eval_accuracy"):
        assert resumed["metrics"][key] == pytest.approx(reference["metrics"][key], rel=1e-4, abs=1e-6), key



# ------------------------------------------------------------------------------------------ issue 31 cases


def test_recipe_checks_run_before_any_data_is_loaded_or_anything_is_written(capsys, in_tmp, monkeypatch) -> None:
    """``run`` checks a recipe built (or changed) in code the same way as ``load_recipe``, before it loads data
    or touches training.output_dir."""
    import lsr_hf.job.train
    from lsr_hf.recipe import RecipeError, load_recipe

    monkeypatch.setattr(lsr_hf.job.train, "prepare_data", lambda cfg: pytest.fail("data loaded"))
    recipe_ = load_recipe(recipe("r.yaml", {"name": "demo"}))
    recipe_.training["per_device_train_batch_size"] = 0
    with pytest.raises(RecipeError, match=r"^r.yaml: training.per_device_train_batch_size must be an integer in"):
        lsr_hf.job.train.run(recipe_)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["r.yaml"]


def test_a_classlabel_id_out_of_range_gets_the_label_range_error(capsys, in_tmp) -> None:
    """A parquet file can store 12 under a ClassLabel of 10 names; it used to reach the stratified carving."""
    root = label_parquet(in_tmp / "data", [0, 1, 12], ClassLabel(names=list(CIFAR10)))
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", image_data(root)))
    assert (code, error_line(err)) == (
        2, f"error: column 'label' (data.label_column) in the train split of {root} must hold class ids in [0, 10), "
        "got [12]"
    )  # fmt: skip
    assert not (in_tmp / "out").exists()


def image_folder(root: Path, classes: dict[str, list[str]]) -> Path:
    """``root/<split>/<class>/<i>.png`` with 4 images a class of each split."""
    images, _ = class_images(4, 4, 16, seed=0)
    for split, names in classes.items():
        for c, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                (folder / f"{i}.png").write_bytes(png_bytes(images[(c % 4) * 4 + i]))
    return root


def test_a_class_only_in_the_test_split_exits_2(capsys, in_tmp) -> None:
    root = image_folder(in_tmp / "data", {"train": ["cat", "dog"], "test": ["cat", "dog", "zebra"]})
    data = {"name": "auto", "path": str(root), "validation_fraction": 0.25}
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", data))
    assert (code, error_line(err)) == (
        2,
        f"error: the test split of {root} has examples of 1 class(es) that the train split has none of: 'zebra'; a "
        "class never seen in training cannot be learned. Add training examples of it, or remove it from the test "
        "split",
    )
    assert not (in_tmp / "out").exists()


def test_correct_prob_below_one_over_k_of_the_data_exits_2_before_any_output(capsys, in_tmp) -> None:
    """K of a dataset without a built-in spec is known once it is loaded: 3 classes here, a = 0.3 < 1/3."""
    root = image_folder(in_tmp / "data", {"train": ["a", "b", "c"], "test": ["a", "b", "c"]})
    data = {"name": "auto", "path": str(root), "validation_fraction": 0.25}
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", data))
    assert (code, error_line(err)) == (
        2, f"error: r.yaml: loss.correct_prob must be in [1/K, 1) = [0.333333, 1) for K = 3 classes, got 0.3 ({root})"
    )  # fmt: skip
    assert not (in_tmp / "out").exists()


def test_a_file_name_that_is_not_utf8_is_named(capsys, in_tmp) -> None:
    root = image_folder(in_tmp / "data", {"train": ["a", "b"]})
    with open(os.fsencode(root / "train" / "a") + b"/caf\xe9.png", "wb") as f:  # Latin-1, not UTF-8
        f.write(png_bytes(np.zeros((16, 16, 3), np.uint8)))
    data = {"name": "auto", "path": str(root)}
    code, _, err = cli(capsys, "--recipe", recipe("r.yaml", data))
    assert (code, error_line(err)) == (
        2, f"error: {root} holds file names that are not valid UTF-8, which datasets cannot read: "
        "b'train/a/caf\\xe9.png'; rename them to UTF-8 (e.g. with convmv) or remove them"
    )  # fmt: skip


def test_overwrite_refuses_a_folder_that_is_not_an_lsr_hf_run(capsys, in_tmp, monkeypatch) -> None:
    """The user's own README.md and config.json are not deleted: --overwrite clears only a folder marked as a run
    (its recipe.yaml or results.json); in a marked one, the run's README.md (the card) goes, other files stay."""
    import lsr_hf.job.train

    monkeypatch.setattr(lsr_hf.job.train, "prepare_data", lambda cfg: pytest.fail("data loaded"))
    out = in_tmp / "out"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    (out / "config.json").write_text("{}")
    path = recipe("r.yaml", {"name": "demo"})
    for flags in ((), ("--overwrite",), ("--resume", "--overwrite")):
        code, _, err = cli(capsys, "--recipe", path, *flags)
        prefix = "--overwrite: training.output_dir='out' holds files (README.md, config.json), but" if flags else (
            "training.output_dir='out' already holds files (README.md, config.json):"
        )  # fmt: skip
        assert (code, error_line(err)) == (
            2, f"error: {prefix} it is not an lsr-hf run (no recipe.yaml or results.json of one), so --overwrite "
            "will not delete anything in it: choose another training.output_dir, or empty the folder yourself"
        ), flags  # fmt: skip
        assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json"]
        assert (out / "README.md").read_text() == "my notes"

    from lsr_hf.job.outputs import plan_output_dir
    from lsr_hf.recipe import load_recipe, write_resolved

    write_resolved(load_recipe(path), out / "recipe.yaml")  # now it is a run's folder
    (out / "notes.txt").write_text("mine")
    assert plan_output_dir(out, {}, overwrite=True).checkpoint is None
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_full_disk_while_saving_a_checkpoint_exits_4_and_resume_finishes_the_run(
    capsys, in_tmp, finished, monkeypatch
) -> None:
    """safetensors fails (as it does on a full disk) while checkpoint-4 is written: one line, exit status 4,
    checkpoint-2 intact; --resume deletes the partial checkpoint-4 and ends with the uninterrupted run's metrics."""
    import transformers.modeling_utils
    from safetensors import SafetensorError

    _, reference_recipe, reference = finished
    path = recipe("r.yaml", yaml.safe_load(Path(reference_recipe).read_text())["data"])
    real_save = transformers.modeling_utils.safe_save_file

    def full_disk(tensors, filename, metadata=None):
        if "checkpoint-4" in str(filename):
            Path(filename).write_bytes(b"\0" * 10)
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    code, _, err = cli(capsys, "--recipe", path)
    assert (code, error_line(err)) == (
        4,
        "error: could not write checkpoint-4 in training.output_dir='out': SafetensorError: Error while serializing: "
        "I/O error: No space left on device (os error 28); the last complete checkpoint, checkpoint-2, is kept. Free "
        "some disk space (or fix the folder), then run the same command with --resume",
    )
    assert "Traceback" not in err
    out = in_tmp / "out"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (out / "results.json").exists()

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", real_save)  # space freed
    code, _, err = cli(capsys, "--recipe", path, "--resume")
    assert code == 0, err[-3000:]
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["resumed_from"] == "out/checkpoint-2"
    for key in ("test_accuracy", "test_loss", "test_nll", "test_ece", "eval_loss", "eval_accuracy"):
        assert resumed["metrics"][key] == reference["metrics"][key], key


def test_ctrl_c_during_training_exits_130_with_one_line_that_says_how_to_resume(capsys, in_tmp, monkeypatch) -> None:
    """A real SIGINT at step 3 of 6: the step ends, checkpoint-3 is saved, one line on stderr, status 130."""
    import lsr_hf.job.train
    from lsr_hf.job.guards import GracefulInterrupt

    class CtrlCAtStep3(GracefulInterrupt):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(lsr_hf.job.train, "GracefulInterrupt", CtrlCAtStep3)
    monkeypatch.setattr(sys, "argv", ["scripts/train.py", "--recipe", "r.yaml"])
    root = image_parquet(in_tmp / "data")
    path = recipe("r.yaml", image_data(root), training={"save_total_limit": None})
    code, out, err = cli(capsys, "--recipe", path)
    assert code == 130 and "test accuracy" not in out
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert lines == [
        "interrupted (Ctrl-C) at step 3 of 6: saved out/checkpoint-3; continue with: scripts/train.py --recipe r.yaml "
        "--resume"
    ]
    assert "Traceback" not in err
    assert sorted(p.name for p in (in_tmp / "out").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    code, _, err = cli(capsys, "--recipe", path, "--resume")
    assert code == 0, err[-3000:]
