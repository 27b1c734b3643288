"""Saved folders load without lsr-hf and give the job's own test predictions on real inputs: real CIFAR-10 test
JPEGs (a cifar_* backbone through the code shipped in the folder, a stock timm backbone through transformers and
through ``timm.create_model("local-dir:...")`` with timm's own eval transform) and real FSDD speech clips (the audio
model and its feature extractor, ``trust_remote_code=True``). The loading side runs in a subprocess where
``import lsr_hf`` fails, on the raw files a Hub user would have. Skipped where ../shared/data is absent."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lsr_hf.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR10 = REPO.parent / "shared" / "data" / "cifar10-jpeg" / "plain_text"
FSDD = REPO.parent / "shared" / "data" / "fsdd"
NO_LSR_HF = "import sys\nsys.modules['lsr_hf'] = None  # `import lsr_hf` (and any lsr_hf.*) now fails\n"
FAST = [
    "training.save_strategy='no'", "training.eval_strategy='no'", "training.use_cpu=true",
    "training.dataloader_num_workers=0", "training.disable_tqdm=true", "training.report_to=none",
]  # fmt: skip


def _without_lsr_hf(code: str, cwd: Path) -> dict:
    """Runs ``code`` in a fresh interpreter where lsr_hf cannot be imported; it prints one JSON line."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", NO_LSR_HF + textwrap.dedent(code)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _agreement(job: dict, got: np.ndarray) -> tuple[float, float]:
    """(share of equal top-1 predictions, largest |probability difference|) against the job's test logits."""
    logits = job["logits"].astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return float((got.argmax(1) == logits.argmax(1)).mean()), float(np.abs(got - probs).max())


@pytest.fixture(scope="module")
def cifar_runs(tmp_path_factory):
    """300 real training and 100 real test rows of CIFAR-10 (Hub parquet layout); two short runs on them
    (cifar_mobilenetv2: a cifar_* net whose eval-mode outputs vary with the image after two steps; cifar_resnet18 and
    cifar_shufflenetv2 need many more steps before their BatchNorm statistics do)."""
    if not SHARED_CIFAR10.is_dir():
        pytest.skip(f"real CIFAR-10 not found at {SHARED_CIFAR10} (../shared/data is only on the dev machines)")
    from lsr_hf.job.train import run

    root = tmp_path_factory.mktemp("cifar10")
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 300), ("test", 100)):
        table = pq.read_table(SHARED_CIFAR10 / f"{split}-00000-of-00001.parquet").slice(0, n)
        pq.write_table(table, data / f"{split}-00000-of-00001.parquet")
    folders = {}
    for model in ("cifar_mobilenetv2", "resnet10t"):
        out = root / model
        recipe = load_recipe(
            REPO / "recipes" / "cifar10_ostc.yaml",
            [f"data.path={data}", f"model.name={model}", f"training.output_dir={out}", "training.max_steps=2",
             "training.per_device_train_batch_size=16", *FAST],
        )  # fmt: skip
        run(recipe)
        folders[model] = out
    return data / "test-00000-of-00001.parquet", folders


def test_real_cifar10_test_images_give_the_job_predictions_without_lsr_hf(cifar_runs):
    test_parquet, folders = cifar_runs
    got = _without_lsr_hf(
        f"""
        import io, json
        import numpy as np, pyarrow.parquet as pq, timm, torch
        from PIL import Image
        from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline
        rows = pq.read_table({str(test_parquet)!r}).to_pylist()
        images = [Image.open(io.BytesIO(r["img"]["bytes"])) for r in rows]  # the JPEGs as a Hub user has them
        out = {{"labels": [r["label"] for r in rows]}}

        def scores(outputs, id2label):
            label2id = {{name: int(i) for i, name in id2label.items()}}
            table = np.zeros((len(outputs), len(label2id)))
            for row, output in zip(table, outputs):
                for entry in output:
                    row[label2id[entry["label"]]] = entry["score"]
            return table.tolist()

        for name, remote in (("cifar_mobilenetv2", True), ("resnet10t", False)):
            folder = {str(folders["cifar_mobilenetv2"].parent)!r} + "/" + name
            classifier = pipeline("image-classification", model=folder, trust_remote_code=remote, device="cpu")
            out[name + "/pipeline"] = scores(classifier(images, top_k=10), classifier.model.config.id2label)
            processor = AutoImageProcessor.from_pretrained(folder)
            model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=remote).eval()
            with torch.no_grad():
                logits = model(**processor(images, return_tensors="pt")).logits
            out[name + "/auto"] = torch.softmax(logits.double(), 1).tolist()
            if remote:
                sys.path.insert(0, folder)
                import modeling_lsr_cifar  # noqa: F401  (registers the cifar_* nets with timm)
            net = timm.create_model("local-dir:" + folder, pretrained=True).eval()
            transform = timm.data.create_transform(**timm.data.resolve_data_config(model=net))
            with torch.no_grad():
                logits = net(torch.stack([transform(im.convert("RGB")) for im in images]))
            out[name + "/timm"] = torch.softmax(logits.double(), 1).tolist()
        assert not [m for m in sys.modules if m.startswith("lsr_hf") and sys.modules[m] is not None]
        print(json.dumps(out))
        """,
        test_parquet.parent,
    )
    for name, folder in folders.items():
        job = np.load(folder / "test_predictions.npz", allow_pickle=False)
        np.testing.assert_array_equal(job["labels"], got["labels"])  # the same 100 images, in the same order
        assert job["logits"].std(0).min() > 1e-3  # the outputs depend on the image: agreeing is not trivial
        for loader in ("pipeline", "auto", "timm"):
            top1, gap = _agreement(job, np.asarray(got[f"{name}/{loader}"]))
            assert top1 == 1.0 and gap < 1e-4, (name, loader, top1, gap)


def _fsdd_slice(root: Path, n_train: int) -> Path:
    """n_train real training recordings and one real test recording per digit, copied (not the repo: a temp dir)."""
    for digit in range(10):
        for split, n in (("train", n_train), ("test", 1)):
            target = root / split / str(digit)
            target.mkdir(parents=True)
            for path in sorted((FSDD / split / str(digit)).glob("*.wav"))[:n]:
                shutil.copy(path, target / path.name)
    return root


@pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD not found at {FSDD} (../shared/data is only on the dev machines)")
def test_real_fsdd_clips_give_the_job_predictions_without_lsr_hf(tmp_path):
    from lsr_hf.job.train import run

    data = _fsdd_slice(tmp_path / "fsdd", n_train=12)
    out = tmp_path / "audio"
    recipe = load_recipe(
        REPO / "recipes" / "audiofolder_ostc.yaml",
        [f"data.path={data}", "model.name=test_resnet", f"training.output_dir={out}", "training.max_steps=3",
         "training.per_device_train_batch_size=16", *FAST],
    )  # fmt: skip
    run(recipe)
    job = np.load(out / "test_predictions.npz", allow_pickle=False)
    assert sorted(job["labels"].tolist()) == list(range(10))  # one clip a digit: the label says which file a row is
    clips = {int(label): str(next((data / "test" / str(int(label))).glob("*.wav"))) for label in job["labels"]}
    got = _without_lsr_hf(
        f"""
        import json
        import soundfile as sf
        from transformers import pipeline
        classifier = pipeline("audio-classification", model={str(out)!r}, trust_remote_code=True, device="cpu")
        label2id = {{name: int(i) for i, name in classifier.model.config.id2label.items()}}
        rows = []
        for label in {[int(x) for x in job["labels"]]!r}:
            audio, rate = sf.read({clips!r}[label], dtype="float32")  # the WAV file as a Hub user has it
            scores = {{e["label"]: e["score"] for e in classifier({{"raw": audio, "sampling_rate": rate}}, top_k=None)}}
            rows.append([scores[name] for name in sorted(label2id, key=label2id.get)])
        assert not [m for m in sys.modules if m.startswith("lsr_hf") and sys.modules[m] is not None]
        print(json.dumps({{"probs": rows}}))
        """,
        tmp_path,
    )
    top1, gap = _agreement(job, np.asarray(got["probs"]))
    assert top1 == 1.0 and gap < 1e-4, (top1, gap)
