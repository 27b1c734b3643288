"""Saved folders load without lsr-hf: the cifar_* image models and the audio model (with its feature extractor)
through the code shipped in the folder (``auto_map``, ``trust_remote_code=True``), stock timm models with timm-native
weight names that ``timm.create_model("local-dir:...")`` loads; checked in a subprocess where ``import lsr_hf``
fails, against the logits of the model that was saved."""

import json
import os
import subprocess
import sys
import textwrap

import torch

from lsr_hf.models import AudioCNNFeatureExtractor, ModelConfig, build_audio_model, build_image_model
from lsr_hf.job.processing import timm_pretrained_cfg

NO_LSR_HF = "import sys\nsys.modules['lsr_hf'] = None  # `import lsr_hf` (and any lsr_hf.*) now fails\n"


def _run_without_lsr_hf(code: str, cwd) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", NO_LSR_HF + textwrap.dedent(code)],
        capture_output=True, text=True, env=env, cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def _image_folder(tmp_path, name):
    model = build_image_model(ModelConfig(name=name), 3).eval()
    cfg = {"input_size": (3, 32, 32), "mean": (0.5, 0.4, 0.3), "std": (0.25, 0.2, 0.3)}
    model.config.pretrained_cfg = timm_pretrained_cfg(model.timm_model.pretrained_cfg, cfg, 3)
    folder = tmp_path / name
    model.save_pretrained(folder)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.save({"x": x, "logits": model(pixel_values=x).logits}, tmp_path / f"{name}.pt")
    return folder


def test_cifar_and_stock_image_models_load_without_lsr_hf(tmp_path):
    cifar = _image_folder(tmp_path, "cifar_shufflenetv2")
    stock = _image_folder(tmp_path, "resnet10t")
    assert (cifar / "modeling_lsr_cifar.py").is_file() and not (stock / "modeling_lsr_cifar.py").exists()
    assert json.loads((cifar / "config.json").read_text())["auto_map"] == {
        "AutoModelForImageClassification": "modeling_lsr_cifar.TimmWrapperForImageClassification"
    }
    out = _run_without_lsr_hf(
        f"""
        import torch, timm
        from PIL import Image
        from transformers import AutoModelForImageClassification, pipeline
        from safetensors import safe_open
        for name, remote in (("cifar_shufflenetv2", True), ("resnet10t", False)):
            folder = {str(tmp_path)!r} + "/" + name
            ref = torch.load(folder + ".pt")
            keys = list(safe_open(folder + "/model.safetensors", "pt").keys())
            assert not any(k.startswith("timm_model.") for k in keys), keys[:3]
            model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=remote).eval()
            with torch.no_grad():
                torch.testing.assert_close(model(pixel_values=ref["x"]).logits, ref["logits"])
            top = pipeline("image-classification", model=folder, trust_remote_code=remote)(Image.new("RGB", (32, 32)))
            assert len(top) == 3
            if remote:
                sys.path.insert(0, folder)
                import modeling_lsr_cifar  # noqa: F401  (registers the cifar_* nets with timm)
            net = timm.create_model("local-dir:" + folder, pretrained=True).eval()
            assert tuple(net.pretrained_cfg["input_size"]) == (3, 32, 32) and tuple(net.pretrained_cfg["mean"]) == (0.5, 0.4, 0.3)
            with torch.no_grad():
                torch.testing.assert_close(net(ref["x"]), ref["logits"])
        assert not [m for m in sys.modules if m.startswith("lsr_hf") and sys.modules[m] is not None]
        print("ok")
        """,
        tmp_path,
    )
    assert out.strip().endswith("ok")


def test_audio_model_and_feature_extractor_load_without_lsr_hf(tmp_path):
    config = ModelConfig(name="resnet10t", n_mels=16, n_fft=256, hop_length=64, clip_vote="probabilities")
    model = build_audio_model(config, 3, 8000).eval()
    folder = tmp_path / "audio"
    model.save_pretrained(folder)
    AudioCNNFeatureExtractor(sampling_rate=8000, segment_length=2000, num_segments=2).save_pretrained(folder)
    assert {"modeling_lsr_audio.py", "feature_extraction_lsr_audio.py"} <= {p.name for p in folder.iterdir()}
    clip = 0.1 * torch.randn(12000)  # 0.75 s at 16 kHz: resampled to 8 kHz, padded to 2 segments of 2000
    fe = AudioCNNFeatureExtractor(sampling_rate=8000, segment_length=2000, num_segments=2)
    values = fe(clip.numpy(), sampling_rate=16000, return_tensors="pt")["input_values"]
    with torch.no_grad():
        expected = torch.softmax(model(input_values=values).logits[0], 0)  # the probabilities vote
    torch.save({"clip": clip, "probs": expected}, tmp_path / "audio.pt")
    out = _run_without_lsr_hf(
        f"""
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline
        folder = {str(folder)!r}
        ref = torch.load(folder + ".pt")
        model = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True).eval()
        assert model.config.clip_vote == "probabilities"
        extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
        assert type(extractor).__name__ == "AudioCNNFeatureExtractor"
        classifier = pipeline("audio-classification", model=folder, trust_remote_code=True)
        got = classifier({{"raw": ref["clip"].numpy(), "sampling_rate": 16000}}, top_k=None)
        scores = {{e["label"]: e["score"] for e in got}}
        probs = [scores[model.config.id2label[i]] for i in range(3)]
        torch.testing.assert_close(torch.tensor(probs), ref["probs"], atol=1e-5, rtol=0)
        print("ok")
        """,
        tmp_path,
    )
    assert out.strip().endswith("ok")


def test_the_shipped_files_import_no_lsr_hf_and_agree_on_the_clip_votes():
    from pathlib import Path

    from lsr_hf.models import config, modeling_lsr_audio

    models = Path(config.__file__).parent
    for name in ("modeling_lsr_cifar.py", "modeling_lsr_audio.py", "feature_extraction_lsr_audio.py"):
        text = (models / name).read_text()
        assert "import lsr_hf" not in text and "from lsr_hf" not in text and "from ." not in text, name
    assert modeling_lsr_audio.CLIP_VOTES == config.CLIP_VOTES
