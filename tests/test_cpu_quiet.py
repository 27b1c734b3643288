"""On the CPU the job asks for no pinned memory and no non-blocking copies (torch and transformers warn on every
DataLoader otherwise); with an accelerator the recipe's settings are kept as they are."""

from pathlib import Path

import pytest
import torch

from lsr_hf.recipe import load_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo_ostc.yaml"


@pytest.fixture(scope="module")
def recipe():
    loaded = load_recipe(RECIPE)
    assert loaded.training["dataloader_pin_memory"] is True  # what recipes/base/common.yaml asks for (GPU speed)
    assert loaded.training["accelerator_config"] == {"non_blocking": True}
    return loaded


@pytest.mark.parametrize("use_cpu, accelerator", [(True, True), (False, False)], ids=["use_cpu", "no accelerator"])
def test_cpu_training_pins_nothing(recipe, monkeypatch, use_cpu, accelerator):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: accelerator)
    args = recipe.training_arguments(use_cpu=True) if use_cpu else recipe.training_arguments()
    assert args.dataloader_pin_memory is False and args.accelerator_config.non_blocking is False
    assert recipe.training["dataloader_pin_memory"] is True  # the recipe itself is left as it is


def test_accelerator_training_keeps_the_recipe_settings(recipe, monkeypatch):
    built: dict = {}
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr("transformers.TrainingArguments", lambda **kwargs: built.update(kwargs))  # no CUDA here
    recipe.training_arguments()
    assert built["dataloader_pin_memory"] is True and built["accelerator_config"] == {"non_blocking": True}
