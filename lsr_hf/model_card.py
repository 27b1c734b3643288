"""The model card (``README.md``) written next to a trained model and pushed with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from lsr_hf.data import get_spec
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


def write_model_card(output_dir: str | Path, recipe: Recipe, results: dict[str, Any]) -> Path:
    """Writes ``output_dir/README.md``: Hub metadata, the objective, test/validation metrics, how to load."""
    dataset = results["dataset"]
    spec = get_spec(recipe.data.name) if recipe.data.builtin else None  # a Hub id or local data has no spec
    modality = dataset.get("modality") or spec.modality
    hub_id = spec.hub_id if spec is not None else (None if recipe.data.path else recipe.data.name)
    metrics = results["metrics"]
    data = ModelCardData(
        library_name="transformers",
        tags=["lsr-hf", "label-smoothing", "knowledge-distillation", recipe.loss.method, modality],
        datasets=[hub_id] if hub_id else None,
        metrics=["accuracy", "ece", "nll"],
        pipeline_tag="audio-classification" if modality == "audio" else "image-classification",
    )
    loss = recipe.loss
    rows = "\n".join(
        f"| {split} | "
        + " | ".join(_fmt(metrics.get(f"{prefix}_{name}")) for name in REPORTED)
        + " |"
        for split, prefix in (("test", "test"), ("validation", "eval"))
    )
    auto_class = "AutoModelForAudioClassification" if modality == "audio" else "AutoModelForImageClassification"
    content = f"""---
{data.to_yaml()}
---

# {recipe.model.name} on {spec.name if spec else (hub_id or recipe.data.path)}, trained with {METHOD_NAMES[loss.method]}

Trained with lsr-hf's `OSTCTrainer`: L = (1 − α)·CE + α·w·KL(q ‖ softmax(z/τ)), with
method `{loss.method}`, α = {loss.alpha}, τ = {loss.temperature}, a = {loss.correct_prob}
(Tf-KD: T_t = {loss.teacher_temperature}, multiplier = {loss.multiplier}).

| split | accuracy | top-5 accuracy | ECE (15 bins) | NLL |
|---|---|---|---|---|
{rows}

Data: `{recipe.data.name}` ({results["dataset"]["sizes"]}), seed {results["seed"]}.
The full resolved recipe is in `recipe.yaml`, all metrics and versions in `results.json`.

```python
import lsr_hf  # registers the lsr-hf architectures
from transformers import {auto_class}

model = {auto_class}.from_pretrained("{recipe.hub.repo_id or 'path/to/this/folder'}")
```
"""
    path = Path(output_dir) / "README.md"
    ModelCard(content).save(path)
    return path


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"
