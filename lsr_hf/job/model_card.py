"""The model card (``README.md``) written next to a trained model and pushed with it.

It holds the Hub metadata (``model-index`` with the test metrics, datasets, tags, library, pipeline tag), the results
table, a reliability diagram of the test predictions (``reliability.png``), the command and the resolved recipe that
trained the model, the preprocessing it expects (read back from the saved ``config.json`` /
``preprocessor_config.json``, so the card describes the files it sits next to) and code that loads it with
``pipeline``, the ``Auto*`` classes and timm without lsr-hf (``trust_remote_code=True`` for the models whose code
ships in the folder: the ``cifar_*`` nets and the audio model); ``tests/test_pipeline.py`` runs every Python block of a
generated card. The card's metadata has the license (``hub.license``) and, only for data from the Hub, the dataset
id; the card a push uploads (``lsr_hf.job.hub``) has no absolute path in it.
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
from lsr_hf.losses import METHOD_SPECS
from lsr_hf.metrics.compute import METRIC_NAMES, METRIC_SPECS
from lsr_hf.metrics.functional import ECE_BINS
from lsr_hf.job.outputs import PREDICTIONS_FILE
from lsr_hf.recipe import Recipe

REPORTED = METRIC_NAMES  # the card's metrics, labelled as METRIC_SPECS says; the method's title: METHOD_SPECS
RELIABILITY_FILE = "reliability.png"
AUDIO_MODEL_TYPE = "lsr_audio_cnn"


DATA_TERMS = {
    "cifar10": "CIFAR-10 (Krizhevsky, 2009; https://www.cs.toronto.edu/~kriz/cifar.html): its authors state no "
    "license; cite their technical report, \"Learning Multiple Layers of Features from Tiny Images\".",
    "cifar100": "CIFAR-100 (Krizhevsky, 2009; https://www.cs.toronto.edu/~kriz/cifar.html): its authors state no "
    "license; cite their technical report, \"Learning Multiple Layers of Features from Tiny Images\".",
    "cinic10": "CINIC-10 (Darlow et al., 2018): its repository states the MIT license; its images come from CIFAR-10 "
    "and ImageNet, whose terms apply to them too.",
    "gtzan": "GTZAN (Tzanetakis and Cook, 2002) is distributed for research use only, and the copyright of its "
    "clips stays with their owners: this model is meant for research use.",
    "demo": "The demo data is scikit-learn's copy of the UCI \"Optical Recognition of Handwritten Digits\" dataset "
    "(CC BY 4.0).",
}


def dataset_label(data: DataConfig) -> str:
    """The name the card gives the training data: ``data.name``, or for ``data.name: auto`` the last component of
    ``data.path`` (never a path)."""
    if data.name != AUTO:
        return str(data.name)
    return Path(str(data.path)).name or "local data"


def write_model_card(
    output_dir: str | Path,
    recipe: Recipe,
    results: dict[str, Any],
    to: str | Path | None = None,
    public: bool = False,
) -> Path:
    """Writes ``README.md`` (and ``reliability.png`` when the test predictions and matplotlib are there) for the
    model saved in ``output_dir`` into ``to`` (default: ``output_dir``); returns the card's path.

    The code in the card loads the model from ``hub.repo_id`` when the recipe pushes it, else from ``output_dir``
    as written (a path relative to where training was launched stays relative). ``public`` (the card a push
    uploads): every absolute path in it is shortened (``lsr_hf.job.public.public_text``), the command line included."""
    from lsr_hf.job.public import public_command, public_text

    output_dir = Path(output_dir)
    to = output_dir if to is None else Path(to)
    config = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))
    audio = config.get("model_type") == AUDIO_MODEL_TYPE
    hub = bool(recipe.hub.push and recipe.hub.repo_id)
    model_ref = recipe.hub.repo_id if hub else output_dir.as_posix()
    if public and not hub:
        model_ref = public_text(model_ref, output_dir)
    metrics = results["metrics"]
    dataset = dataset_label(recipe.data)
    dataset_id = _hub_dataset_id(recipe.data)
    task = "audio-classification" if audio else "image-classification"
    title = f"{recipe.model.name} on {dataset}, trained with {METHOD_SPECS[recipe.loss.method].title}"
    model_name = str(recipe.hub.repo_id).split("/")[-1] if hub else f"{recipe.model.name}-{dataset}-{recipe.loss.method}"

    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type=dataset_id or dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type=name,
            metric_value=round(float(metrics[f"test_{name}"]), 4),
            metric_name=f"test {METRIC_SPECS[name].label}",
        )
        for name in REPORTED
        if metrics.get(f"test_{name}") is not None
    ]
    card_data = ModelCardData(
        model_name=model_name.replace("/", "-"),
        license=recipe.hub.license,
        library_name="transformers",
        pipeline_tag=task,
        tags=["lsr-hf", "label-smoothing", "knowledge-distillation", recipe.loss.method, "timm", task],
        datasets=[dataset_id] if dataset_id else None,
        metrics=["accuracy", "ece", "nll"],
        base_model=_base_model(recipe),
        eval_results=eval_results or None,
    )
    diagram = _write_reliability(
        output_dir, to, f"{recipe.model.name} on {dataset}, {recipe.loss.method}: test split"
    )
    if audio:
        preprocessing = _audio_preprocessing(output_dir)
        usage = _audio_usage(model_ref, config, hub)
    else:
        preprocessing = _image_preprocessing(config)
        usage = _image_usage(model_ref, config, hub)
    command = results.get("command")
    if public and command:
        results = {**results, "command": public_command(command, output_dir)}

    content = f"""---
{card_data.to_yaml()}
---

# {title}

Trained with lsr-hf's `OSTCTrainer`: L = (1 − α)·CE + α·w·KL(q ‖ softmax(z/τ)), with
{_loss_settings(recipe)}.

## Results

{_results_table(metrics)}

Data: `{dataset}` ({_sizes(results["dataset"])}), {results["dataset"]["num_classes"]} classes, seed {results["seed"]}.
ECE: expected calibration error over {ECE_BINS} equal-width confidence bins; NLL: mean negative log-likelihood.
All metrics and package versions are in `results.json`, the test logits in `{PREDICTIONS_FILE}`.

{diagram}

## How to use

{usage}

## Preprocessing

{preprocessing}

## Training

{_training(recipe, results, output_dir, model_ref if hub else None)}

## License and data

{_license(recipe, dataset)}
"""
    if public:
        content = public_text(content, output_dir)
    path = to / "README.md"
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
    """The Hub id the data came from, or None when it came from a local ``data.path`` (even a copy of a built-in
    dataset) or from no Hub dataset (``demo``): a built-in dataset's, or ``data.name`` itself when it is a Hub id."""
    if data.path is not None or data.name == AUTO:
        return None
    if data.builtin:
        return get_spec(data.name).hub_id
    return data.name


def _license(recipe: Recipe, dataset: str) -> str:
    """The card's license section: the weights' license and the data's terms."""
    data = DATA_TERMS.get(str(recipe.data.name)) if recipe.data.name != AUTO else None
    if data is None:
        data = (f"The model was trained on `{dataset}`: the terms of that data apply to it; check them before you use "
                "or share the model.")  # fmt: skip
    base = _base_model(recipe)
    started = f" It started from timm's pretrained `{base}` weights, whose license applies as well." if base else ""
    return (
        f"The weights and code in this repository are released under `{recipe.hub.license}` (the recipe's "
        f"`hub.license`).{started} Data: {data}"
    )


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
    header = "| split | " + " | ".join(METRIC_SPECS[name].label for name in REPORTED) + " |"
    rule = "|---" * (len(REPORTED) + 1) + "|"
    rows = [
        f"| {split} | " + " | ".join(_fmt(metrics.get(f"{prefix}_{name}")) for name in REPORTED) + " |"
        for split, prefix in (("test", "test"), ("validation", "eval"))
    ]
    return "\n".join([header, rule, *rows])


def _sizes(dataset: dict[str, Any]) -> str:
    return ", ".join(f"{split} {count}" for split, count in dataset["sizes"].items())


def reliability_figure(logits: np.ndarray, labels: np.ndarray, title: str, n_bins: int = ECE_BINS) -> Any:
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


def _write_reliability(output_dir: Path, to: Path, title: str) -> str:
    """Draws ``to/reliability.png`` from the test predictions in ``output_dir``; the card's text for it."""
    predictions = output_dir / PREDICTIONS_FILE
    if not predictions.is_file():
        return f"(No reliability diagram: `{PREDICTIONS_FILE}` is missing.)"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "(No reliability diagram: matplotlib was not installed where the card was written.)"
    with np.load(predictions, allow_pickle=False) as saved:
        logits, labels = np.asarray(saved["logits"]), np.asarray(saved["labels"])
    reliability_figure(logits, labels, title).savefig(to / RELIABILITY_FILE, dpi=110)
    return (
        f"![Reliability diagram of the test predictions]({RELIABILITY_FILE})\n\n"
        "Reliability diagram of the test predictions: accuracy against confidence (top-1 probability) per bin; "
        "points under the diagonal are over-confident."
    )


def _folder_line(model_ref: str, hub: bool) -> tuple[str, str]:
    """(import line, assignment) of the Python that sets ``folder`` to a local copy of the model: the folder
    itself, or a download of the Hub repo."""
    if not hub:
        return "", f"folder = {model_ref!r}"
    return "from huggingface_hub import snapshot_download\n", f"folder = snapshot_download({model_ref!r})"


def _remote_code(config: dict[str, Any]) -> bool:
    """Whether the model's code ships in its folder (``auto_map`` in ``config.json``): the ``cifar_*`` nets, audio."""
    return bool(config.get("auto_map"))


def _image_usage(model_ref: str, config: dict[str, Any], hub: bool = False) -> str:
    cfg = config["pretrained_cfg"]
    channels, height, width = cfg["input_size"]
    remote = _remote_code(config)
    trust = ", trust_remote_code=True" if remote else ""
    if remote:
        about = f"""`{config["architecture"]}` is one of lsr-hf's CIFAR-stem nets: its code ships with the model
(`modeling_lsr_cifar.py`, listed in `auto_map` of `config.json`), so transformers loads it with
`trust_remote_code=True` (read that file first: it runs on your machine) and timm once that file is imported;
lsr-hf itself is not needed.
The image processor"""
        register = (
            "sys.path.insert(0, folder)\n"
            "import modeling_lsr_cifar  # noqa: E402,F401  (registers the cifar_* nets with timm)\n"
        )
    else:
        about = f"""The model is a `transformers` `TimmWrapperForImageClassification` around timm's
`{config["architecture"]}`: transformers and timm load it as it is, without lsr-hf or remote code.
The image processor"""
        register = ""
    hf_hub = (
        f'\n(or, straight from the Hub, `timm.create_model("hf-hub:{model_ref}", pretrained=True)`)'
        if hub and not remote else ""
    )  # fmt: skip
    fetch, folder = _folder_line(model_ref, hub)
    return f"""{about} (`TimmWrapperImageProcessor`) is read from the `pretrained_cfg` in `config.json`.

```bash
pip install torch transformers timm safetensors pillow
```

With `pipeline`:

```python
from PIL import Image
from transformers import pipeline

classifier = pipeline("image-classification", model="{model_ref}"{trust})
image = Image.new("RGB", ({width}, {height}), (128, 128, 128))  # or Image.open("your_image.png")
print(classifier(image, top_k=3))
```

With the `Auto` classes:

```python
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

processor = AutoImageProcessor.from_pretrained("{model_ref}")
model = AutoModelForImageClassification.from_pretrained("{model_ref}"{trust}).eval()
inputs = processor(Image.new("RGB", ({width}, {height})), return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
print(model.config.id2label[int(logits.argmax(-1))])
```

With timm alone: `model.safetensors` holds timm's own weight names and `config.json` the `pretrained_cfg`, so
`timm.create_model("local-dir:...")` builds the net with its weights and preprocessing{hf_hub}:

```python
{"import sys" + chr(10) + chr(10) if remote else ""}import timm
import torch
{fetch}
{folder}
{register}model = timm.create_model(f"local-dir:{{folder}}", pretrained=True).eval()
transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))  # the preprocessing below
with torch.no_grad():
    print(model(torch.zeros(1, {channels}, {height}, {width})).shape)
```"""


def _image_preprocessing(config: dict[str, Any]) -> str:
    cfg = config["pretrained_cfg"]
    _, height, width = cfg["input_size"]
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


def _audio_usage(model_ref: str, config: dict[str, Any], hub: bool = False) -> str:
    rate = 44100 if config["sample_rate"] != 44100 else 16000
    fetch, folder = _folder_line(model_ref, hub)
    return f"""The model is lsr-hf's `AudioCNNForAudioClassification` (log-mel front end + a timm CNN) with its
feature extractor `AudioCNNFeatureExtractor`; their code ships with the model (`modeling_lsr_audio.py`,
`feature_extraction_lsr_audio.py`, listed in `auto_map`), so transformers loads them with `trust_remote_code=True`
(read those files first: they run on your machine); lsr-hf itself is not needed.

```bash
pip install torch torchaudio transformers timm safetensors numpy
```

With `pipeline` (a clip of any length, at any sample rate: here 2.5 s of noise at {rate} Hz):

```python
import numpy as np
from transformers import pipeline

classifier = pipeline("audio-classification", model="{model_ref}", trust_remote_code=True)
clip = 0.1 * np.random.default_rng(0).standard_normal(int(2.5 * {rate})).astype(np.float32)
print(classifier({{"raw": clip, "sampling_rate": {rate}}}, top_k=3))
```

With the `Auto` classes:

```python
import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

extractor = AutoFeatureExtractor.from_pretrained("{model_ref}", trust_remote_code=True)
model = AutoModelForAudioClassification.from_pretrained("{model_ref}", trust_remote_code=True).eval()
clip = np.zeros({config["sample_rate"]}, dtype=np.float32)  # 1 s at the model's rate
inputs = extractor(clip, sampling_rate={config["sample_rate"]}, return_tensors="pt")  # input_values (1, S, T)
with torch.no_grad():
    logits = model(**inputs).logits  # the vote of the S segments (config.clip_vote)
print(model.config.id2label[int(logits.argmax(-1))])
```

With timm alone: the backbone is `timm.create_model("{config["backbone"]}", in_chans=1, ...)` on the log-mel image
(`LogMelSpectrogram` in `modeling_lsr_audio.py`); its weights are the `backbone.` entries of the state dict:

```python
import timm
from safetensors.torch import load_file
{fetch}
{folder}
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


def _training(recipe: Recipe, results: dict[str, Any], output_dir: Path, repo_id: str | None = None) -> str:
    recipe_file = output_dir / "recipe.yaml"
    resolved = recipe_file.read_text(encoding="utf-8") if recipe_file.is_file() else ""
    command = results.get("command")
    if command and command.split(maxsplit=1)[0].endswith(".py"):  # sys.argv of `python scripts/train.py ...`
        command = f"python {command}"
    launched = f"The command that trained this model:\n\n```bash\n{command}\n```\n\n" if command else ""
    if repo_id is not None:
        fetch = f"hf download {repo_id} recipe.yaml --local-dir .\n"
        recipe_arg = "recipe.yaml"
    else:
        fetch, recipe_arg = "", f"{output_dir.as_posix()}/recipe.yaml"
    return f"""{launched}Recipe: `{results.get("source", "")}`. `recipe.yaml` beside the model is that recipe
resolved (base recipes merged, every `--set` override applied). Training it again needs lsr-hf: in a checkout of
lsr-hf, after `pip install -e .` there (the output folder is part of the recipe; `--set` another one):

```bash
{fetch}accelerate launch -q scripts/train.py --recipe {recipe_arg} --set training.output_dir=outputs/retrained
```

<details>
<summary>recipe.yaml</summary>

```yaml
{resolved.rstrip()}
```

</details>

Wall time {results.get("wall_seconds", "?")} s on {results.get("environment", {}).get("device", "?")}
({results.get("environment", {}).get("world_size", 1)} process(es)); {_versions()}."""
