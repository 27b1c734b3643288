"""lsr_hf.models: CIFAR backbones registered with timm, the timm wrapper builder and the audio classifier.

Tiny inputs only (2 CPU cores): 32x32 images, 0.25 s waveforms at 8 kHz, resnet10t / small CIFAR nets."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from transformers import AutoModelForAudioClassification, AutoModelForImageClassification

import lsr_hf.models  # noqa: F401  (registers cifar_* and lsr_audio_cnn)
from lsr_hf.models import (
    AudioCNNConfig,
    AudioCNNForAudioClassification,
    ModelConfig,
    build_audio_model,
    build_image_model,
)
from lsr_hf.models.audio import clip_logits

# name -> parameter count for 100 classes of the usual CIFAR versions (kuangliu/pytorch-cifar style)
REFERENCE_PARAMS = {
    "cifar_resnet18": 11.22e6,
    "cifar_resnet50": 23.7e6,
    "cifar_mobilenetv2": 2.4e6,
    "cifar_shufflenetv2": 1.36e6,
    "cifar_googlenet": 6.2e6,
    "cifar_densenet121": 7.05e6,
    "cifar_resnext29_8x64d": 34.5e6,
}

AUDIO_CFG = dict(name="resnet10t", n_mels=32, n_fft=256, hop_length=64)
SAMPLE_RATE = 8000


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _assert_same_state(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


# ------------------------------------------------------------------------------------------- CIFAR backbones


def test_all_cifar_models_registered():
    assert sorted(timm.list_models("cifar_*")) == sorted(REFERENCE_PARAMS)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_cifar_model_params_and_logits(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=100)
    n_params = _n_params(model)
    assert abs(n_params - REFERENCE_PARAMS[name]) <= 0.10 * REFERENCE_PARAMS[name], n_params
    cfg = model.pretrained_cfg
    assert tuple(cfg["input_size"]) == (3, 32, 32)
    assert cfg["mean"] == pytest.approx((0.5071, 0.4865, 0.4409), abs=1e-3)
    assert model.get_classifier() is model.get_submodule(cfg["classifier"])
    first_conv = model.get_submodule(cfg["first_conv"])
    assert isinstance(first_conv, torch.nn.Conv2d)
    assert first_conv.kernel_size == (3, 3) and first_conv.stride == (1, 1)  # CIFAR stem

    model.reset_classifier(10)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


def test_cifar_resnet_keeps_timm_init():
    model = timm.create_model("cifar_resnet18", num_classes=10)
    # timm's zero_init_last: the last BatchNorm gamma of every residual branch starts at 0
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            assert torch.count_nonzero(block.bn2.weight) == 0
    # Kaiming normal, fan_out: std = sqrt(2 / (64 * 3 * 3)) ~ 0.059 for the stem conv
    assert model.conv1.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.1)


def test_cifar_features_only_strides():
    model = timm.create_model("cifar_resnet18", features_only=True).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 32, 32))
    assert [f.shape[-1] for f in features] == [32, 32, 16, 8, 4]
    assert model.feature_info.reduction() == [1, 1, 2, 4, 8]


def test_reimport_is_quiet_and_keeps_registrations():
    code = textwrap.dedent(
        """
        import importlib, warnings
        import timm, torch
        import lsr_hf.models as models
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            importlib.reload(models.cifar)
            importlib.reload(models.audio)
            importlib.reload(models)
        assert timm.create_model("cifar_shufflenetv2", num_classes=3)(torch.randn(1, 3, 32, 32)).shape == (1, 3)
        from transformers import AutoConfig
        assert type(AutoConfig.for_model("lsr_audio_cnn")) is models.AudioCNNConfig
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# ----------------------------------------------------------------------------------------------- ModelConfig


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", ""),
        ("name", None),
        ("pretrained", "yes"),
        ("drop_rate", 1.0),
        ("drop_rate", -0.1),
        ("drop_rate", "0.1"),
        ("drop_rate", float("nan")),
        ("timm_kwargs", {"num_classes": 3}),
        ("timm_kwargs", {"drop_rate": 0.2}),
        ("timm_kwargs", {"act_layer": torch.nn.ReLU}),
        ("timm_kwargs", [("drop_path_rate", 0.1)]),
        ("n_mels", 0),
        ("n_fft", -1),
        ("hop_length", 1.5),
        ("hop_length", True),
    ],
)
def test_model_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must"):
        ModelConfig(**{field: value})


def test_model_config_defaults_and_dict():
    cfg = ModelConfig(drop_rate=0, timm_kwargs={"drop_path_rate": 0.1})
    assert cfg.name == "cifar_resnet18" and cfg.drop_rate == 0.0 and isinstance(cfg.drop_rate, float)
    assert cfg.to_dict()["timm_kwargs"] == {"drop_path_rate": 0.1}


# ----------------------------------------------------------------------------------------- image wrapper


def test_image_wrapper_has_timm_init():
    torch.manual_seed(123)
    model = build_image_model(ModelConfig(name="cifar_resnet18", drop_rate=0.1), num_classes=10)
    torch.manual_seed(123)
    reference = timm.create_model("cifar_resnet18", num_classes=10, drop_rate=0.1)
    _assert_same_state(model.timm_model.state_dict(), reference.state_dict())
    # what TimmWrapper's own init would have destroyed
    assert torch.count_nonzero(model.timm_model.layer1[0].bn2.weight) == 0
    assert model.timm_model.drop_rate == 0.1
    assert model.config.num_labels == 10


def test_image_wrapper_round_trip(tmp_path):
    labels = {i: f"class_{i}" for i in range(5)}
    model = build_image_model(ModelConfig(name="cifar_shufflenetv2"), num_classes=5, id2label=labels).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(pixel_values=pixel_values).logits
    assert logits.shape == (2, 5)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architecture"] == "cifar_shufflenetv2"
    assert saved["label_names"] == [labels[i] for i in range(5)]
    assert saved["pretrained_cfg"]["input_size"] == [3, 32, 32]

    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    # lsr-hf loads without remote code: transformers' own class, of which the saved one (shipped code) is a subclass
    assert isinstance(model, type(reloaded))
    assert reloaded.config.id2label == labels
    _assert_same_state(reloaded.state_dict(), model.state_dict())
    reloaded.to(memory_format=torch.channels_last)  # the layout is not saved; the same layout gives the same bits
    with torch.no_grad():
        assert torch.equal(reloaded(pixel_values=pixel_values).logits, logits)


def test_image_wrapper_plain_timm_model(tmp_path):
    model = build_image_model(ModelConfig(name="resnet10t", timm_kwargs={"drop_path_rate": 0.05}), 3).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(pixel_values=pixel_values).logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.model_args == {"drop_path_rate": 0.05}
    with torch.no_grad():  # reloaded contiguous: another conv layout, same function up to rounding
        torch.testing.assert_close(reloaded(pixel_values=pixel_values).logits, logits, rtol=1e-5, atol=1e-6)
        reloaded.to(memory_format=torch.channels_last)
        assert torch.equal(reloaded(pixel_values=pixel_values).logits, logits)


def test_channels_last_is_a_layout_only():
    fast = build_image_model(ModelConfig(name="resnet10t"), 4)
    plain = build_image_model(ModelConfig(name="resnet10t", channels_last=False), 4)
    conv = fast.timm_model.conv1[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert plain.timm_model.conv1[0].weight.is_contiguous()
    with pytest.raises(ValueError, match="channels_last must be true or false, got 'yes'"):
        ModelConfig(name="resnet10t", channels_last="yes")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cfg=ModelConfig(name="no_such_net"), num_classes=10), r"^name must"),
        (dict(cfg=ModelConfig(name="cifar_resnet18", pretrained=True), num_classes=10), r"^pretrained"),
        (dict(cfg=ModelConfig(), num_classes=1), r"^num_classes must"),
        (dict(cfg=ModelConfig(), num_classes=3, id2label={0: "a", 1: "b"}), r"^id2label must"),
        (dict(cfg=ModelConfig(), num_classes=2, id2label={0: "a", 1: "a"}), r"^id2label must"),
    ],
)
def test_build_image_model_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_image_model(**kwargs)


# ------------------------------------------------------------------------------------------- audio model


@pytest.fixture(scope="module")
def audio_model():
    torch.manual_seed(7)
    return build_audio_model(ModelConfig(**AUDIO_CFG), num_classes=4, sample_rate=SAMPLE_RATE).eval()


def test_audio_model_has_timm_init():
    torch.manual_seed(42)
    model = build_audio_model(ModelConfig(**AUDIO_CFG, drop_rate=0.2), num_classes=4, sample_rate=SAMPLE_RATE)
    torch.manual_seed(42)
    reference = timm.create_model("resnet10t", num_classes=4, in_chans=1, drop_rate=0.2)
    _assert_same_state(model.backbone.state_dict(), reference.state_dict())
    assert isinstance(model, AudioCNNForAudioClassification)
    assert model.config.sample_rate == SAMPLE_RATE and model.config.n_mels == 32
    assert model.config.backbone_kwargs == {"drop_rate": 0.2}


def test_audio_clip_logits_are_mean_of_segment_logits(audio_model):
    torch.manual_seed(0)
    # segments 20 dB apart (100 dB in all): the dB floor must be taken per segment, not over the batch
    scale = 10.0 ** -torch.arange(6.0).view(2, 3, 1)
    clips = torch.randn(2, 3, 2000) * scale
    with torch.no_grad():
        clip_logits = audio_model(input_values=clips).logits
        segment_logits = torch.stack(
            [torch.cat([audio_model(input_values=clips[b, s : s + 1]).logits for s in range(3)]) for b in range(2)]
        )
    assert clip_logits.shape == (2, 4)
    torch.testing.assert_close(clip_logits, segment_logits.mean(dim=1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("vote", ["logits", "probabilities"])
def test_clip_vote_against_a_float64_reference(vote):
    rng = np.random.default_rng(3)
    segments = rng.normal(scale=4.0, size=(5, 7, 4))
    probs = np.exp(segments - segments.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected = segments.mean(axis=1) if vote == "logits" else np.log(probs.mean(axis=1))
    got = clip_logits(torch.tensor(segments, dtype=torch.float32), vote)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    if vote == "probabilities":  # the clip's softmax is the mean of the segments' probabilities
        np.testing.assert_allclose(torch.softmax(got, -1).numpy(), probs.mean(axis=1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="vote must be one of 'logits', 'probabilities', got 'median'"):
        clip_logits(torch.zeros(1, 2, 3), "median")


def test_the_model_votes_as_configured_and_saves_the_vote(tmp_path):
    torch.manual_seed(7)
    model = build_audio_model(
        ModelConfig(**AUDIO_CFG, clip_vote="probabilities"), num_classes=4, sample_rate=SAMPLE_RATE
    ).eval()
    clips = torch.randn(2, 3, 2000)
    with torch.no_grad():
        segments = torch.stack([model(input_values=clips[b]).logits for b in range(2)])  # (2, 3, 4), one by one
        voted = model(input_values=clips).logits
    torch.testing.assert_close(model.segment_logits(clips), segments, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(voted, torch.log(torch.softmax(segments, -1).mean(dim=1)), atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    assert AudioCNNForAudioClassification.from_pretrained(tmp_path).config.clip_vote == "probabilities"
    with pytest.raises(ValueError, match="clip_vote must be one of 'logits', 'probabilities', got 'max'"):
        ModelConfig(clip_vote="max")


def test_audio_loss(audio_model):
    torch.manual_seed(1)
    waves, labels = torch.randn(3, 2000), torch.tensor([0, 3, 1])
    with torch.no_grad():
        out = audio_model(input_values=waves, labels=labels)
        summed = audio_model(input_values=waves, labels=labels, num_items_in_batch=6).loss
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    torch.testing.assert_close(summed, F.cross_entropy(out.logits, labels, reduction="sum") / 6)
    assert audio_model(input_values=waves).loss is None
    with pytest.raises(ValueError, match="input_values must"):
        audio_model(input_values=torch.randn(2000))


def test_audio_round_trip_auto_class(audio_model, tmp_path):
    waves = torch.randn(2, 2, 2000)
    with torch.no_grad():
        logits = audio_model(input_values=waves).logits
    audio_model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "lsr_audio_cnn"
    reloaded = AutoModelForAudioClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is AudioCNNForAudioClassification
    assert reloaded.config.hop_length == 64 and reloaded.config.sample_rate == SAMPLE_RATE
    reloaded.backbone.to(memory_format=torch.channels_last)  # the layout is not saved; same layout, same bits
    with torch.no_grad():
        assert torch.equal(reloaded(input_values=waves).logits, logits)


def test_audio_front_end_stays_float32():
    model = build_audio_model(ModelConfig(**AUDIO_CFG), num_classes=4, sample_rate=SAMPLE_RATE).eval()
    waves = torch.randn(2, 2000)
    filterbank = model.front_end.mel.mel_scale.fb.clone()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.front_end(waves).dtype == torch.float32
        assert model(input_values=waves).logits.dtype == torch.bfloat16  # the backbone does run under autocast
    model.to(torch.bfloat16)
    assert next(model.backbone.parameters()).dtype == torch.bfloat16
    assert torch.equal(model.front_end.mel.mel_scale.fb, filterbank)  # still float32, bit for bit
    with torch.no_grad():
        assert torch.isfinite(model(input_values=waves).logits.float()).all()


def test_audio_front_end_is_per_example_standardised(audio_model):
    features = audio_model.front_end(torch.randn(3, 2000) * torch.tensor([[1.0], [1e-3], [10.0]]))
    assert features.shape[:3] == (3, 1, 32)
    torch.testing.assert_close(features.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(features.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "field, value",
    [("sample_rate", 0), ("n_mels", -4), ("top_db", 0.0), ("backbone", ""), ("backbone_kwargs", {"in_chans": 3})],
)
def test_audio_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must"):
        AudioCNNConfig(**{field: value})
