"""A trained model is a plain HF model: ``pipeline()`` straight from the output folder gives the job's own test
predictions (images: the demo digits decoded from the test split; audio: synthetic clips at another sample rate),
its preprocessing is saved with the final model and every checkpoint, and every Python block of its card runs."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from data_fixtures import write_gtzan_parquet
from lsr_hf.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
FAST = [
    "training.save_strategy=steps", "training.eval_strategy='no'", "training.use_cpu=true",
    "training.dataloader_num_workers=0", "training.disable_tqdm=true", "training.report_to=none",
    "training.logging_steps=1",
]  # fmt: skip


def python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, re.S)


def run_blocks(card: str, cwd: Path, monkeypatch) -> list[dict]:
    blocks = python_blocks(card)
    monkeypatch.chdir(cwd)
    namespaces = []
    for i, block in enumerate(blocks):
        namespace: dict = {}
        exec(compile(block, f"README.md block {i}", "exec"), namespace)
        namespaces.append(namespace)
    return namespaces


# ------------------------------------------------------------------------------------------------------------ image


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from lsr_hf.job.train import run

    out = tmp_path_factory.mktemp("demo") / "out"
    recipe = load_recipe(
        REPO / "recipes" / "demo_ostc.yaml",
        [f"training.output_dir={out}", "training.max_steps=8", "training.save_steps=4", "training.save_total_limit=2",
         *FAST],
    )
    return run(recipe), out


def test_image_pipeline_reproduces_the_job_test_predictions(image_run):
    from transformers import pipeline

    from lsr_hf.data.demo import load_demo

    results, out = image_run
    saved = np.load(out / "test_predictions.npz", allow_pickle=False)
    test = load_demo()["test"]  # PIL images decoded from the test split, as a user would have them
    classifier = pipeline("image-classification", model=str(out), device="cpu")
    outputs = classifier(list(test["img"]), top_k=10, batch_size=64)
    id2label = classifier.model.config.id2label
    label2id = {name: i for i, name in id2label.items()}
    scores = np.zeros_like(saved["logits"])
    for row, output in zip(scores, outputs):
        for entry in output:
            row[label2id[entry["label"]]] = entry["score"]
    job_top1 = saved["logits"].argmax(1)
    np.testing.assert_array_equal(saved["labels"], np.asarray(test["label"]))
    assert len(set(job_top1.tolist())) > 1  # a model that predicts one class would agree trivially
    assert (scores.argmax(1) == job_top1).mean() >= 0.99
    job_probs = torch.softmax(torch.from_numpy(saved["logits"]), dim=1).numpy()
    np.testing.assert_allclose(scores, job_probs, atol=1e-4)
    assert (scores.argmax(1) == saved["labels"]).mean() == pytest.approx(results["metrics"]["test_accuracy"], abs=0.01)


def test_image_preprocessing_is_in_config_json_of_the_model_and_checkpoints(image_run):
    from lsr_hf.data import DataConfig, prepare_data
    from lsr_hf.job.processing import STALE_PRETRAINED_KEYS

    _, out = image_run
    data = prepare_data(DataConfig(name="demo"))
    images = torch.stack([data.test[i]["pixel_values"] for i in range(len(data.test))])
    # the demo's statistics, recomputed from its training images (independent of the spec and of the job)
    train = torch.stack([data.train[i]["pixel_values"] for i in range(len(data.train))]).float() / 255
    folders = [out, *sorted(out.glob("checkpoint-*"))]
    assert len(folders) == 3  # the final model and the checkpoints at steps 4 and 8
    for folder in folders:
        cfg = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
        assert cfg["input_size"] == [3, *images.shape[2:]]
        np.testing.assert_allclose(cfg["mean"], train.mean(dim=(0, 2, 3)).numpy(), atol=1e-4)
        np.testing.assert_allclose(cfg["std"], train.std(dim=(0, 2, 3)).numpy(), atol=1e-4)
        assert cfg["crop_pct"] == 1.0 and cfg["num_classes"] == 10
        assert not set(cfg) & set(STALE_PRETRAINED_KEYS), cfg


def test_image_model_loads_in_timm_with_its_data_config(image_run):
    import timm
    from safetensors.torch import load_file
    from transformers import AutoModelForImageClassification

    _, out = image_run
    config = json.loads((out / "config.json").read_text())
    net = timm.create_model(config["architecture"], num_classes=10, pretrained_cfg_overlay=config["pretrained_cfg"])
    state = load_file(out / "model.safetensors")
    net.load_state_dict({k.removeprefix("timm_model."): v for k, v in state.items()})
    data_config = timm.data.resolve_data_config(model=net)
    assert tuple(data_config["input_size"]) == (3, 32, 32) and data_config["crop_pct"] == 1.0
    wrapped = AutoModelForImageClassification.from_pretrained(out).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), wrapped(pixel_values=x).logits)


def test_image_card_metadata_recipe_diagram_and_code(image_run, monkeypatch, tmp_path):
    from huggingface_hub import ModelCard

    results, out = image_run
    text = (out / "README.md").read_text()
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
    assert "lsr_os_tc" in card.data.tags
    by_metric = {r.metric_type: r.metric_value for r in card.data.eval_results}  # parsed back from model-index
    assert by_metric["accuracy"] == pytest.approx(results["metrics"]["test_accuracy"], abs=1e-4)
    assert by_metric["ece"] == pytest.approx(results["metrics"]["test_ece"], abs=1e-4)
    assert all(r.dataset_split == "test" for r in card.data.eval_results)
    assert "](reliability.png)" in text
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recipe_block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "card_recipe.yaml").write_text(recipe_block)
    assert load_recipe(tmp_path / "card_recipe.yaml") == load_recipe(out / "recipe.yaml")
    assert yaml.safe_load(recipe_block)["training"]["max_steps"] == 8
    assert results["command"] in text
    namespaces = run_blocks(text, tmp_path, monkeypatch)
    assert len(namespaces) == 3  # pipeline, Auto classes, timm
    assert len(namespaces[0]["classifier"](namespaces[0]["image"], top_k=3)) == 3
    assert namespaces[1]["logits"].shape == (1, 10)


def test_readme_pipeline_block_runs_on_a_trained_demo_folder(image_run, monkeypatch, tmp_path, capsys):
    _, out = image_run
    text = (REPO / "README.md").read_text()
    marker = "<!-- the block below is run by tests/test_pipeline.py on a trained demo model -->"
    block = re.search(re.escape(marker) + r"\s*```python\n(.*?)```", text, re.S)
    assert block, "README lost its pipeline example"
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "demo_lsr_os_tc").symlink_to(out)  # where `make demo` writes its model
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    top3 = namespace["classifier"](namespace["digit"], top_k=3)
    assert len(top3) == 3 and {entry["label"] for entry in top3} <= set("0123456789")
    assert str(top3[:1])[:20] in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------------------ audio

NATIVE_RATE, MODEL_RATE = 16000, 8000


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    from lsr_hf.job.train import run

    tmp = tmp_path_factory.mktemp("audio")
    # files at 16 kHz, trained at 8 kHz: the pipeline must resample as the job did
    root = write_gtzan_parquet(tmp / "data", n_per_class=2, seconds=1.0, sample_rate=NATIVE_RATE, corrupt=0)
    recipe_path = tmp / "recipe.yaml"
    recipe_path.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "gtzan", "path": str(root), "sample_rate": MODEL_RATE, "segment_seconds": 0.25},
                "model": {"name": "resnet10t", "n_mels": 16, "n_fft": 256, "hop_length": 64},
                "training": {"output_dir": str(tmp / "out"), "per_device_train_batch_size": 16, "optim": "sgd",
                             "learning_rate": 0.05, "seed": 0},
            }
        )
    )  # fmt: skip
    recipe = load_recipe(recipe_path, ["training.max_steps=4", "training.save_steps=2", *FAST])
    return run(recipe), tmp / "out", root


def test_audio_pipeline_scores_raw_clips_like_the_job(audio_run):
    import pyarrow.parquet as pq
    from transformers import pipeline

    _, out, root = audio_run
    saved = np.load(out / "test_predictions.npz", allow_pickle=False)
    table = pq.read_table(root / "data" / "test-00000-of-00001.parquet").to_pydict()
    classifier = pipeline("audio-classification", model=str(out), device="cpu")
    id2label = classifier.model.config.id2label
    label2id = {name: i for i, name in id2label.items()}
    assert len(table["audio"]) == len(saved["logits"]) == 20
    for audio, logits in zip(table["audio"], saved["logits"]):
        wave, rate = sf.read(io.BytesIO(audio["bytes"]), dtype="float32")  # the raw file, at its own 16 kHz
        assert rate == NATIVE_RATE
        output = classifier({"raw": wave, "sampling_rate": rate}, top_k=None)
        scores = np.zeros(len(id2label), dtype=np.float32)
        for entry in output:
            scores[label2id[entry["label"]]] = entry["score"]
        np.testing.assert_allclose(scores, torch.softmax(torch.from_numpy(logits), 0).numpy(), atol=1e-4)


def test_audio_pipeline_takes_any_length_and_rate(audio_run):
    import torchaudio.functional as AF
    from transformers import AutoModelForAudioClassification, pipeline

    _, out, _ = audio_run
    fe = json.loads((out / "preprocessor_config.json").read_text())
    assert fe["feature_extractor_type"] == "AudioCNNFeatureExtractor"
    assert (fe["sampling_rate"], fe["segment_length"], fe["num_segments"]) == (MODEL_RATE, 2000, 4)
    model = AutoModelForAudioClassification.from_pretrained(out).eval()
    classifier = pipeline("audio-classification", model=str(out), device="cpu")
    rng = np.random.default_rng(0)
    for seconds, rate in ((0.3, 11025), (2.2, 44100), (1.0, MODEL_RATE)):
        clip = (0.3 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
        wave = torch.from_numpy(clip)
        at_model_rate = AF.resample(wave, rate, MODEL_RATE) if rate != MODEL_RATE else wave
        padded = torch.zeros(4 * 2000)  # the job's test clips: 4 segments of 0.25 s, zero padded or cropped
        padded[: min(len(at_model_rate), 8000)] = at_model_rate[:8000]
        with torch.no_grad():
            expected = torch.softmax(model(input_values=padded.view(1, 4, 2000)).logits[0], 0)
        output = classifier({"array": clip, "sampling_rate": rate}, top_k=None)
        got = {entry["label"]: entry["score"] for entry in output}
        np.testing.assert_allclose([got[model.config.id2label[i]] for i in range(10)], expected.numpy(), atol=1e-5)


def test_audio_feature_extractor_saved_in_checkpoints_and_card_code_runs(audio_run, monkeypatch, tmp_path):
    from huggingface_hub import ModelCard

    _, out, _ = audio_run
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == ["checkpoint-2", "checkpoint-4"]
    final = json.loads((out / "preprocessor_config.json").read_text())
    for checkpoint in checkpoints:
        assert json.loads((checkpoint / "preprocessor_config.json").read_text()) == final
    text = (out / "README.md").read_text()
    assert ModelCard.load(out / "README.md").data.pipeline_tag == "audio-classification"
    assert "AudioCNNFeatureExtractor" in text and "](reliability.png)" in text
    namespaces = run_blocks(text, tmp_path, monkeypatch)
    assert len(namespaces) == 3
    assert namespaces[1]["inputs"]["input_values"].shape == (1, 4, 2000)
    assert len(namespaces[2]["backbone"].state_dict()) > 0


# ------------------------------------------------------------------------------------------------------ unit level


def test_feature_extractor_pads_crops_resamples_and_checks_input():
    from lsr_hf.models import AudioCNNFeatureExtractor

    fe = AudioCNNFeatureExtractor(sampling_rate=100, segment_length=10, num_segments=3)
    clip = np.arange(1, 36, dtype=np.float32)
    values = fe(clip, return_tensors="pt")["input_values"]
    assert values.shape == (1, 3, 10) and values.dtype == torch.float32
    torch.testing.assert_close(values.flatten(), torch.arange(1, 31, dtype=torch.float32))  # cropped to 30
    short = fe(clip[:12])["input_values"][0]
    assert short.reshape(-1)[:12].tolist() == clip[:12].tolist() and not short.reshape(-1)[12:].any()
    whole = AudioCNNFeatureExtractor(sampling_rate=100, segment_length=10, num_segments=None)
    assert whole(clip)["input_values"].shape == (1, 4, 10)
    assert fe(np.ones(400, dtype=np.float32), sampling_rate=200)["input_values"].shape == (1, 3, 10)
    with pytest.raises(ValueError, match="segment counts"):
        whole([clip, clip[:5]])
    with pytest.raises(ValueError, match=r"one clip \(samples,\) or a batch"):
        fe(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="segment_length must be an integer > 0"):
        AudioCNNFeatureExtractor(segment_length=0)


def test_feature_extractor_round_trips_through_auto_feature_extractor(tmp_path):
    from transformers import AutoFeatureExtractor

    from lsr_hf.models import AudioCNNConfig, AudioCNNFeatureExtractor

    AudioCNNConfig(sample_rate=100, num_labels=2).save_pretrained(tmp_path)
    AudioCNNFeatureExtractor(sampling_rate=100, segment_length=10, num_segments=3).save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(loaded, AudioCNNFeatureExtractor) and loaded.num_segments == 3
    assert AutoFeatureExtractor.from_pretrained(tmp_path, num_segments=None).num_segments is None


def test_timm_pretrained_cfg_keeps_the_architecture_and_drops_the_weights_source():
    import timm

    from lsr_hf.job.processing import STALE_PRETRAINED_KEYS, timm_pretrained_cfg

    default = dict(timm.create_model("resnet10t", pretrained=False).pretrained_cfg)
    assert default["hf_hub_id"] and default["input_size"] != (3, 28, 40)
    cfg = timm_pretrained_cfg(default, {"input_size": (3, 28, 40), "mean": (0.1, 0.2, 0.3), "std": (1, 2, 3)}, 7)
    assert cfg["input_size"] == [3, 28, 40] and cfg["mean"] == [0.1, 0.2, 0.3] and cfg["std"] == [1.0, 2.0, 3.0]
    assert cfg["first_conv"] == default["first_conv"] and cfg["classifier"] == default["classifier"]
    assert cfg["num_classes"] == 7 and not set(cfg) & set(STALE_PRETRAINED_KEYS)


def test_hub_upload_carries_the_preprocessing_and_the_card_points_at_the_repo(audio_run, tmp_path):
    import shutil

    from lsr_hf.job.hub import push_files, stage_push
    from lsr_hf.job.model_card import write_model_card

    results, out, _ = audio_run
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    recipe = load_recipe(folder / "recipe.yaml", ["hub.push=true", "hub.repo_id=someone/tiny-audio"])
    text = write_model_card(folder, recipe, results).read_text()
    assert 'pipeline("audio-classification", model="someone/tiny-audio", trust_remote_code=True)' in text
    assert "snapshot_download('someone/tiny-audio')" in text and str(folder) not in text.split("## Training")[0]

    uploaded = set(push_files(folder))  # what a push uploads (the push itself: tests/test_hub.py)
    expected = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "reliability.png",
                "modeling_lsr_audio.py", "feature_extraction_lsr_audio.py"}  # fmt: skip
    assert expected <= uploaded
    assert not any(name.startswith("checkpoint-") or name.endswith(".bin") for name in uploaded)
    staged = stage_push(folder, tmp_path / "stage", "someone/tiny-audio")
    assert staged == sorted(uploaded)
    assert "model=\"someone/tiny-audio\"" in (tmp_path / "stage" / "README.md").read_text()
