"""The model card (``README.md``) written next to a trained model and pushed with it.

It holds the Hub metadata (``model-index`` with the test metrics, datasets, tags, library, pipeline tag), the results
table, a reliability diagram of the test predictions (``reliability.png``), the command and the resolved recipe that
trained the model, the preprocessing it expects (read back from the saved ``config.json`` /
``preprocessor_config.json``, so the card describes the files it sits next to) and code that loads it with
``pipeline``, the ``Auto*`` classes and timm; ``tests/test_pipeline.py`` runs every Python block of a generated card.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from lsr_hf.data import get_spec
from lsr_hf.data.config import AUTO, DataConfig
from lsr_hf.recipe import Recipe

METHOD_NAMES = {
    "ce": "cross-entropy",
    "lsr": "label smoothing (LSR)",
    "tfkd": "Tf-KD_reg (teacher-free KD, Yuan et al. 2020)",
    "lsr_os": "LSR-OS (label smoothing with output smoothing)",
    "lsr_os_tc": "LSR-OS-TC (output smoothing + teacher correction, Wang et al. 2021)",
    "kd": "knowledge distillation from a teacher",
}
REPORTED = ("accuracy", "top5_accuracy", "ece", "nll")
METRIC_NAMES = {"accuracy": "accuracy", "top5_accuracy": "top-5 accuracy", "ece": "ECE (15 bins)", "nll": "NLL"}
RELIABILITY_FILE = "reliability.png"
RELIABILITY_BINS = 15
PREDICTIONS_FILE = "test_predictions.npz"  # written by lsr_hf.train (test logits and labels)
AUDIO_MODEL_TYPE = "lsr_audio_cnn"


def write_model_card(output_dir: str | Path, recipe: Recipe, results: dict[str, Any]) -> Path:
    """Writes ``output_dir/README.md`` (and ``reliability.png`` when the test predictions and matplotlib are there)
    for the model saved in ``output_dir``; returns the card's path.

    The code in the card loads the model from ``hub.repo_id`` when the recipe pushes it, else from ``output_dir``
    as written (a path relative to where training was launched stays relative)."""
    output_dir = Path(output_dir)
    config = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))
    audio = config.get("model_type") == AUDIO_MODEL_TYPE
    model_ref = recipe.hub.repo_id if recipe.hub.push and recipe.hub.repo_id else output_dir.as_posix()
    metrics = results["metrics"]
    dataset = recipe.data.path if recipe.data.name == AUTO else recipe.data.name
    dataset_id = _hub_dataset_id(recipe.data)
    task = "audio-classification" if audio else "image-classification"
    title = f"{recipe.model.name} on {dataset}, trained with {METHOD_NAMES[recipe.loss.method]}"

    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type=dataset_id or dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type=name,
            metric_value=round(float(metrics[f"test_{name}"]), 4),
            metric_name=f"test {METRIC_NAMES[name]}",
        )
        for name in REPORTED
        if metrics.get(f"test_{name}") is not None
    ]
    card_data = ModelCardData(
        model_name=f"{recipe.model.name}-{dataset}-{recipe.loss.method}",
        library_name="transformers",
        pipeline_tag=task,
        tags=["lsr-hf", "label-smoothing", "knowledge-distillation", recipe.loss.method, "timm", task],
        datasets=[dataset_id] if dataset_id else None,
        metrics=["accuracy", "ece", "nll"],
        base_model=_base_model(recipe),
        eval_results=eval_results or None,
    )
    diagram = _write_reliability(output_dir, f"{recipe.model.name} on {dataset}, {recipe.loss.method}: test split")
    if audio:
        preprocessing = _audio_preprocessing(output_dir)
        usage = _audio_usage(model_ref, config)
    else:
        preprocessing = _image_preprocessing(config)
        usage = _image_usage(model_ref, config)

    content = f"""---
{card_data.to_yaml()}
---

# {title}

Trained with lsr-hf's `OSTCTrainer`: L = (1 − α)·CE + α·w·KL(q ‖ softmax(z/τ)), with
{_loss_settings(recipe)}.

## Results

{_results_table(metrics)}

Data: `{dataset}` ({_sizes(results["dataset"])}), {results["dataset"]["num_classes"]} classes, seed {results["seed"]}.
ECE: expected calibration error over {RELIABILITY_BINS} equal-width confidence bins; NLL: mean negative log-likelihood.
All metrics and package versions are in `results.json`, the test logits in `{PREDICTIONS_FILE}`.

{diagram}

## How to use

{usage}

## Preprocessing

{preprocessing}

## Training

{_training(recipe, results, output_dir)}
"""
    path = output_dir / "README.md"
    ModelCard(content).save(path)
    return path


# ------------------------------------------------------------------------------------------------------ sections


def _loss_settings(recipe: Recipe) -> str:
    loss = recipe.loss
    if loss.method == "ce":
        return "method `ce` (α = 0: plain cross-entropy)"
    if loss.method == "tfkd":
        return (
            f"method `tfkd`, α = {loss.alpha}, T_t = {loss.teacher_temperature}, multiplier = {loss.multiplier}"
        )
    return f"method `{loss.method}`, α = {loss.alpha}, τ = {loss.temperature}, a = {loss.correct_prob}"


def _hub_dataset_id(data: DataConfig) -> str | None:
    """The Hub id the data came from: a built-in dataset's, or ``data.name`` itself when it is a Hub id (not
    ``auto`` and not loaded from ``data.path``)."""
    if data.builtin:
        return get_spec(data.name).hub_id
    return None if data.path is not None or data.name == AUTO else data.name


def _base_model(recipe: Recipe) -> str | None:
    """The Hub id of timm's pretrained weights the model started from, if any."""
    if not recipe.model.pretrained:
        return None
    import timm

    cfg = timm.models.get_pretrained_cfg(recipe.model.name)
    return getattr(cfg, "hf_hub_id", None) if cfg is not None else None


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


def _results_table(metrics: dict[str, Any]) -> str:
    header = "| split | " + " | ".join(METRIC_NAMES[name] for name in REPORTED) + " |"
    rule = "|---" * (len(REPORTED) + 1) + "|"
    rows = [
        f"| {split} | " + " | ".join(_fmt(metrics.get(f"{prefix}_{name}")) for name in REPORTED) + " |"
        for split, prefix in (("test", "test"), ("validation", "eval"))
    ]
    return "\n".join([header, rule, *rows])


def _sizes(dataset: dict[str, Any]) -> str:
    return ", ".join(f"{split} {count}" for split, count in dataset["sizes"].items())


def reliability_figure(logits: np.ndarray, labels: np.ndarray, title: str, n_bins: int = RELIABILITY_BINS) -> Any:
    """A matplotlib ``Figure`` (Agg canvas, no pyplot state): per-bin accuracy against confidence of the top-1
    predictions, bins as in ``lsr_hf.metrics.functional.expected_calibration_error``, marker area ∝ bin share."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from lsr_hf.metrics.functional import expected_calibration_error, reliability_bins

    confidence, accuracy, count = reliability_bins(logits, labels, n_bins=n_bins)
    ece = expected_calibration_error(logits, labels, n_bins=n_bins)
    full = count > 0
    figure = Figure(figsize=(4.6, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    ax.plot(confidence[full], accuracy[full], linewidth=1.2, label=f"test, ECE {ece * 100:.2f}%")
    ax.scatter(confidence[full], accuracy[full], s=8 + 300 * count[full] / count.sum(), alpha=0.7, zorder=3)
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="confidence (mean max probability in the bin)",
           ylabel="accuracy in the bin")  # fmt: skip
    ax.set_title(f"{title}\n{n_bins} equal-width bins, marker area ∝ share of predictions", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    return figure


def _write_reliability(output_dir: Path, title: str) -> str:
    """Draws ``reliability.png`` from the test predictions; the card's text for it."""
    predictions = output_dir / PREDICTIONS_FILE
    if not predictions.is_file():
        return f"(No reliability diagram: `{PREDICTIONS_FILE}` is missing.)"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "(No reliability diagram: matplotlib is not installed; `pip install lsr-hf[plots]`.)"
    with np.load(predictions, allow_pickle=False) as saved:
        logits, labels = np.asarray(saved["logits"]), np.asarray(saved["labels"])
    reliability_figure(logits, labels, title).savefig(output_dir / RELIABILITY_FILE, dpi=110)
    return (
        f"![Reliability diagram of the test predictions]({RELIABILITY_FILE})\n\n"
        "Reliability diagram of the test predictions: accuracy against confidence (top-1 probability) per bin; "
        "points under the diagonal are over-confident."
    )


def _folder_line(model_ref: str) -> str:
    """Python that sets ``folder`` to a local copy of the model: the folder itself, or a download of the Hub repo."""
    if Path(model_ref).is_dir():
        return f"folder = {model_ref!r}"
    return f"from huggingface_hub import snapshot_download\n\nfolder = snapshot_download({model_ref!r})"


def _timm_kwargs_source(config: dict[str, Any]) -> str:
    args = config.get("model_args") or {}
    return "".join(f", {key}={value!r}" for key, value in args.items())


def _image_usage(model_ref: str, config: dict[str, Any]) -> str:
    cfg = config["pretrained_cfg"]
    _, height, width = cfg["input_size"]
    num_classes = config.get("num_classes") or len(config.get("label_names") or [])
    overlay = {key: cfg[key] for key in ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")}
    return f"""The model is a `transformers` `TimmWrapperForImageClassification`; its image processor
(`TimmWrapperImageProcessor`) is read from the `pretrained_cfg` in `config.json`. `import lsr_hf.models` registers
lsr-hf's `cifar_*` backbones with timm (needed for those; harmless for the others).

With `pipeline`:

```python
from PIL import Image
from transformers import pipeline

import lsr_hf.models  # noqa: F401  (registers the cifar_* backbones with timm)

classifier = pipeline("image-classification", model="{model_ref}")
image = Image.new("RGB", ({width}, {height}), (128, 128, 128))  # or Image.open("your_image.png")
print(classifier(image, top_k=3))
```

With the `Auto` classes:

```python
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

import lsr_hf.models  # noqa: F401

processor = AutoImageProcessor.from_pretrained("{model_ref}")
model = AutoModelForImageClassification.from_pretrained("{model_ref}").eval()
inputs = processor(Image.new("RGB", ({width}, {height})), return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
print(model.config.id2label[int(logits.argmax(-1))])
```

With timm alone (`timm.create_model` + the state dict; transformers stores the timm net's weights under the prefix
`timm_model.`):

```python
import timm
import torch
from safetensors.torch import load_file

import lsr_hf.models  # noqa: F401

{_folder_line(model_ref)}
model = timm.create_model("{config["architecture"]}", num_classes={num_classes}{_timm_kwargs_source(config)},
                          pretrained_cfg_overlay={overlay!r})
state = load_file(f"{{folder}}/model.safetensors")
model.load_state_dict({{key.removeprefix("timm_model."): value for key, value in state.items()}})
model.eval()
transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))  # the preprocessing below
with torch.no_grad():
    print(model(torch.zeros(1, {cfg["input_size"][0]}, {height}, {width})).shape)
```"""


def _image_preprocessing(config: dict[str, Any]) -> str:
    cfg = config["pretrained_cfg"]
    channels, height, width = cfg["input_size"]
    mean = ", ".join(f"{v:.4f}" for v in cfg["mean"])
    std = ", ".join(f"{v:.4f}" for v in cfg["std"])
    return f"""RGB images of {height}×{width} pixels (the size of every training image), scaled to [0, 1] and
normalised per channel with mean ({mean}) and std ({std}), the statistics the job normalised with. An image of
another size is resized ({cfg["interpolation"]}) so that its shorter side is {min(height, width)} and centre-cropped
to {height}×{width} (`crop_pct` 1.0): timm's evaluation transform for this `pretrained_cfg`, which
`TimmWrapperImageProcessor` and `pipeline` apply; on {height}×{width} images it changes nothing, so the pipeline
gives the job's own test predictions. Training added the augmentation of the recipe (`data` section) on top."""


def _audio_preprocessing(output_dir: Path) -> str:
    fe = json.loads((output_dir / "preprocessor_config.json").read_text(encoding="utf-8"))
    rate, t, s = fe["sampling_rate"], fe["segment_length"], fe["num_segments"]
    vote = json.loads((output_dir / "config.json").read_text(encoding="utf-8")).get("clip_vote", "logits")
    combine = {
        "logits": "averages the segments' logits into the clip's",
        "probabilities": "averages the segments' probabilities into the clip's (its logits are their log)",
    }[vote]
    return f"""A mono waveform at {rate} Hz. `AudioCNNFeatureExtractor` (`preprocessor_config.json`; lsr-hf registers
it with `AutoFeatureExtractor`, since transformers' own feature extractors do not cut a clip into segments) resamples
a clip given at another rate with `torchaudio.functional.resample`, pads it with zeros or crops it to {s} segment(s)
of {t} samples ({t / rate:g} s each), as the training job did with its test clips; the model computes a log-mel
spectrogram per segment (inside the model, in float32) and {combine} (`clip_vote: {vote}` in `config.json`). Pass
`num_segments=None` to `AutoFeatureExtractor.from_pretrained` to score the whole of a longer clip instead (one
segment per {t / rate:g} s, the last zero-padded). `pipeline` expects mono: average the channels of a stereo clip."""


def _audio_usage(model_ref: str, config: dict[str, Any]) -> str:
    rate = 44100 if config["sample_rate"] != 44100 else 16000
    return f"""The model is lsr-hf's `AudioCNNForAudioClassification` (log-mel front end + a timm CNN) with its
feature extractor `AudioCNNFeatureExtractor`; `import lsr_hf.models` registers both with transformers' `Auto` classes
(no remote code).

With `pipeline` (a clip of any length, at any sample rate: here 2.5 s of noise at {rate} Hz):

```python
import numpy as np
from transformers import pipeline

import lsr_hf.models  # noqa: F401  (registers the model and its feature extractor)

classifier = pipeline("audio-classification", model="{model_ref}")
clip = 0.1 * np.random.default_rng(0).standard_normal(int(2.5 * {rate})).astype(np.float32)
print(classifier({{"raw": clip, "sampling_rate": {rate}}}, top_k=3))
```

With the `Auto` classes:

```python
import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

import lsr_hf.models  # noqa: F401

extractor = AutoFeatureExtractor.from_pretrained("{model_ref}")
model = AutoModelForAudioClassification.from_pretrained("{model_ref}").eval()
clip = np.zeros({config["sample_rate"]}, dtype=np.float32)  # 1 s at the model's rate
inputs = extractor(clip, sampling_rate={config["sample_rate"]}, return_tensors="pt")  # input_values (1, S, T)
with torch.no_grad():
    logits = model(**inputs).logits  # the vote of the S segments (config.clip_vote)
print(model.config.id2label[int(logits.argmax(-1))])
```

With timm alone: the backbone is `timm.create_model("{config["backbone"]}", in_chans=1, ...)` on the log-mel image
(`lsr_hf.models.audio.LogMelSpectrogram`); its weights are the `backbone.` entries of the state dict:

```python
import timm
from safetensors.torch import load_file

{_folder_line(model_ref)}
backbone = timm.create_model(
    "{config["backbone"]}", num_classes={len(config["id2label"])}, in_chans=1{_backbone_kwargs(config)}
)
state = load_file(f"{{folder}}/model.safetensors")
backbone.load_state_dict({{k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}})
```"""


def _backbone_kwargs(config: dict[str, Any]) -> str:
    return "".join(f", {key}={value!r}" for key, value in (config.get("backbone_kwargs") or {}).items())


def _versions() -> str:
    parts = []
    for name in ("lsr-hf", "transformers", "timm", "torch"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(parts)


def _training(recipe: Recipe, results: dict[str, Any], output_dir: Path) -> str:
    recipe_file = output_dir / "recipe.yaml"
    resolved = recipe_file.read_text(encoding="utf-8") if recipe_file.is_file() else ""
    command = results.get("command")
    launched = f"The command that trained this model:\n\n```bash\n{command}\n```\n\n" if command else ""
    return f"""{launched}Recipe: `{results.get("source", "")}`. `recipe.yaml` in this folder is that recipe resolved
(base recipes merged, every `--set` override applied); from a checkout of lsr-hf this trains the model again
(the output folder is part of the recipe: `--set training.output_dir=...` to write elsewhere):

```bash
accelerate launch scripts/train.py --recipe recipe.yaml
```

<details>
<summary>recipe.yaml</summary>

```yaml
{resolved.rstrip()}
```

</details>

Wall time {results.get("wall_seconds", "?")} s on {results.get("environment", {}).get("device", "?")}
({results.get("environment", {}).get("world_size", 1)} process(es)); {_versions()}."""
