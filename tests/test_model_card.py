"""The model card (``lsr_hf.job.model_card``) for a Hub user: its Python blocks run as written where lsr-hf is not
installed (``cifar_*`` and audio models through the code shipped in the folder), its metadata round-trips through
``huggingface_hub.ModelCard`` (license, a dataset id only for data from the Hub, a model-index name that is no path),
and the card a push uploads has no absolute path in it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from lsr_hf.job.model_card import write_model_card
from lsr_hf.recipe import load_recipe, write_resolved

REPO = Path(__file__).resolve().parents[1]
NO_LSR_HF = "import sys\nsys.modules['lsr_hf'] = None  # `import lsr_hf` (and any lsr_hf.*) now fails\n"
METRICS = {"test_accuracy": 0.5, "test_top5_accuracy": 1.0, "test_ece": 0.1, "test_nll": 1.2, "eval_accuracy": 0.4}


def results_for(recipe, command: str = "python scripts/train.py --recipe r.yaml") -> dict:
    return {
        "metrics": METRICS, "dataset": {"sizes": {"train": 6, "validation": 3, "test": 3}, "num_classes": 3},
        "seed": 0, "command": command, "source": recipe.source, "wall_seconds": 1.0,
        "environment": {"device": "cpu", "world_size": 1},
    }  # fmt: skip


def image_folder(tmp_path: Path, name: str) -> Path:
    from lsr_hf.models import ModelConfig, build_image_model
    from lsr_hf.job.processing import timm_pretrained_cfg

    model = build_image_model(ModelConfig(name=name), 3, {0: "a", 1: "b", 2: "c"}).eval()
    cfg = {"input_size": (3, 32, 32), "mean": (0.5, 0.4, 0.3), "std": (0.25, 0.2, 0.3)}
    model.config.pretrained_cfg = timm_pretrained_cfg(model.timm_model.pretrained_cfg, cfg, 3)
    folder = tmp_path / name
    model.save_pretrained(folder)
    return folder


def audio_folder(tmp_path: Path) -> Path:
    from lsr_hf.models import AudioCNNFeatureExtractor, ModelConfig, build_audio_model

    config = ModelConfig(name="resnet10t", n_mels=16, n_fft=256, hop_length=64)
    folder = tmp_path / "audio"
    build_audio_model(config, 3, 8000, {0: "a", 1: "b", 2: "c"}).save_pretrained(folder)
    AudioCNNFeatureExtractor(sampling_rate=8000, segment_length=2000, num_segments=2).save_pretrained(folder)
    return folder


def card_for(folder: Path, recipe_file: str, sets: list[str], **kwargs) -> tuple[str, ModelCard]:
    recipe = load_recipe(REPO / "recipes" / recipe_file, [f"training.output_dir={folder}", *sets])
    write_resolved(recipe, folder / "recipe.yaml")
    path = write_model_card(folder, recipe, results_for(recipe, kwargs.pop("command", "python scripts/train.py")),
                            **kwargs)  # fmt: skip
    return path.read_text(), ModelCard.load(path)


def run_blocks_without_lsr_hf(card: str, cwd: Path) -> str:
    """Runs every Python block of the card, in order, in a fresh interpreter where ``import lsr_hf`` fails."""
    blocks = re.findall(r"```python\n(.*?)```", card, re.DOTALL)
    assert blocks
    code = NO_LSR_HF + "\n".join(f"exec(compile({b!r}, 'card block {i}', 'exec'), {{}})" for i, b in enumerate(blocks))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", code + "\nprint('ok')"], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_cifar_card_code_runs_without_lsr_hf(tmp_path):
    folder = image_folder(tmp_path, "cifar_shufflenetv2")
    text, _ = card_for(folder, "cifar10_ostc.yaml", ["model.name=cifar_shufflenetv2"])
    assert "import lsr_hf" not in text and "pip install lsr-hf" not in text
    assert text.count("trust_remote_code=True") >= 2 and "import modeling_lsr_cifar" in text
    assert run_blocks_without_lsr_hf(text, tmp_path).strip().endswith("ok")


def test_stock_timm_card_needs_no_remote_code(tmp_path):
    folder = image_folder(tmp_path, "resnet10t")
    text, _ = card_for(folder, "cifar10_ostc.yaml", ["model.name=resnet10t"])
    assert "trust_remote_code" not in text and "import lsr_hf" not in text
    assert run_blocks_without_lsr_hf(text, tmp_path).strip().endswith("ok")


def test_audio_card_code_runs_without_lsr_hf(tmp_path):
    folder = audio_folder(tmp_path)
    text, card = card_for(folder, "gtzan_ostc.yaml", ["data.sample_rate=8000"])
    assert "import lsr_hf" not in text and card.data.pipeline_tag == "audio-classification"
    assert "research use only" in text  # GTZAN's terms
    assert run_blocks_without_lsr_hf(text, tmp_path).strip().endswith("ok")


@pytest.mark.parametrize(
    ("recipe_file", "sets", "datasets", "dataset_name"),
    [
        ("cifar10_ostc.yaml", [], ["uoft-cs/cifar10"], "cifar10"),  # a built-in dataset, from the Hub
        ("cifar10_ostc.yaml", ["data.path=/somewhere/private/cifar_copy"], None, "cifar10"),  # a local copy
        ("imagefolder_ostc.yaml", ["data.path=/somewhere/private/my_images"], None, "my_images"),
        ("imagefolder_ostc.yaml", ["data.name=someuser/flowers", "data.path=null"], ["someuser/flowers"],
         "someuser/flowers"),
    ],
)  # fmt: skip
def test_card_metadata_round_trips_with_license_and_hub_datasets_only(tmp_path, recipe_file, sets, datasets,
                                                                       dataset_name):  # fmt: skip
    folder = image_folder(tmp_path, "resnet10t")
    text, card = card_for(folder, recipe_file, ["model.name=resnet10t", *sets])
    assert card.data.license == "apache-2.0"
    assert card.data.datasets == datasets
    assert {r.dataset_name for r in card.data.eval_results} == {dataset_name}
    assert "/" not in card.data.model_name and "somewhere" not in card.data.model_name
    assert "somewhere" not in text.split("## Training")[0]  # a local data.path is named by its last component
    again = ModelCard(str(card))  # the metadata parses back to the same values
    assert again.data.to_dict() == card.data.to_dict()


def test_public_card_points_at_the_repo_and_has_no_absolute_path(tmp_path):
    folder = image_folder(tmp_path, "resnet10t")
    stage = tmp_path / "stage"
    stage.mkdir()
    command = f"{sys.executable} {REPO}/scripts/train.py --recipe {tmp_path}/r.yaml --set training.output_dir={folder}"
    text, card = card_for(folder, "imagefolder_ostc.yaml",
                          [f"data.path={tmp_path}/images", "hub.push=true", "hub.repo_id=someone/net",
                           "hub.license=cc-by-4.0"], to=stage, public=True, command=command)  # fmt: skip
    assert (stage / "README.md").is_file() and card.data.license == "cc-by-4.0"
    assert card.data.model_name == "net"
    assert str(tmp_path) not in text and sys.executable not in text and "/work" not in text
    assert 'pipeline("image-classification", model="someone/net")' in text
    assert "hf download someone/net recipe.yaml" in text and "accelerate launch -q scripts/train.py" in text
    assert re.search(r"```bash\npython \S*train\.py --recipe r\.yaml --set training\.output_dir=resnet10t\n", text)
