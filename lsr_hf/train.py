"""The training job: ``run(recipe)`` does what ``scripts/train.py`` (and ``scripts/sweep.py``) run.

Order, as in HF's example scripts: seed → data → model → OSTCTrainer → train (or resume) → save → evaluate on the
validation and test splits → ``results.json``, the test logits and the model card → push to the Hub when the recipe asks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from lsr_hf.data import PreparedData, get_spec, prepare_data
from lsr_hf.data.image import ImageBatchTransform, ImageCollator
from lsr_hf.metrics import build_compute_metrics
from lsr_hf.model_card import write_model_card
from lsr_hf.models import build_audio_model, build_image_model
from lsr_hf.recipe import Recipe, write_resolved
from lsr_hf.schedule import ScheduleConfig, multistep_with_warmup
from lsr_hf.trainer import OSTCTrainer

logger = logging.getLogger(__name__)
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "test_predictions.npz"  # test logits and labels (np.load(..., allow_pickle=False))
PACKAGES = ("lsr-hf", "torch", "transformers", "accelerate", "timm", "datasets", "evaluate", "torchaudio")


class _JobTrainer(OSTCTrainer):
    """``OSTCTrainer`` plus what the job needs:

    * ``train_collator`` for the training loader while ``data_collator`` serves evaluation;
    * ``train_transform`` / ``eval_transform``: applied to the batch's ``pixel_values`` once Trainer has moved the batch
      to the device (images: DESIGN §4's augmentation in training, normalisation in both, on the GPU when there is
      one), chosen by whether the model is in training mode;
    * the recipe's step schedule (``schedule.milestones``) when it has one.
    """

    def __init__(
        self,
        *args: Any,
        train_collator: Any,
        schedule: ScheduleConfig,
        train_transform: ImageBatchTransform | None = None,
        eval_transform: ImageBatchTransform | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._train_collator = self.label_checked(train_collator)
        self._schedule = schedule
        self._transforms = {True: train_transform, False: eval_transform}

    def get_train_dataloader(self):
        eval_collator, self.data_collator = self.data_collator, self._train_collator
        try:  # the DataLoader keeps the collator it was built with
            return super().get_train_dataloader()
        finally:
            self.data_collator = eval_collator

    def _prepare_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        inputs = super()._prepare_inputs(inputs)
        transform = self._transforms[self.model.training]
        if transform is not None:
            inputs["pixel_values"] = transform.transform(inputs["pixel_values"])
        return inputs

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if not self._schedule.milestones:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            accumulation = self.args.gradient_accumulation_steps
            steps_per_epoch = max(math.ceil(len(self.get_train_dataloader()) / accumulation), 1)
            self.lr_scheduler = multistep_with_warmup(
                optimizer if optimizer is not None else self.optimizer,
                warmup_steps=self.args.get_warmup_steps(num_training_steps),
                milestone_steps=[round(epoch * steps_per_epoch) for epoch in self._schedule.milestones],
                gamma=self._schedule.gamma,
            )
        return self.lr_scheduler


def build_model(recipe: Recipe, data: PreparedData) -> PreTrainedModel:
    id2label = dict(enumerate(data.class_names))
    if data.modality == "audio":
        return build_audio_model(recipe.model, data.num_classes, data.sample_rate, id2label)
    return build_image_model(recipe.model, data.num_classes, id2label)


def _on_device(collator: Any) -> tuple[Any, ImageBatchTransform | None]:
    """(collator for the DataLoader, transform for the device batch): an ``ImageBatchTransform`` collator is split
    into ``ImageCollator`` (uint8 batches, a quarter of float32's bytes to pin and copy) and its ``transform``, run
    after Trainer moved the batch to the GPU; any other collator stays as it is."""
    if isinstance(collator, ImageBatchTransform):
        return ImageCollator(), collator
    return collator, None


def build_trainer(
    recipe: Recipe, data: PreparedData, args: TrainingArguments | None = None, callbacks: Sequence[TrainerCallback] = ()
) -> _JobTrainer:
    """The job's trainer for ``recipe`` on ``data``: its model, loss, collators, device transforms and schedule
    (``args``: the recipe's ``TrainingArguments``, built here when not given)."""
    if args is None:
        args = recipe.training_arguments(remove_unused_columns=False, push_to_hub=False)
    train_collator, train_transform = _on_device(data.train_collator)
    eval_collator, eval_transform = _on_device(data.eval_collator)
    return _JobTrainer(
        model=build_model(recipe, data),
        args=args,
        ostc=recipe.loss,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=eval_collator,
        train_collator=train_collator,
        train_transform=train_transform,
        eval_transform=eval_transform,
        schedule=recipe.schedule,
        compute_metrics=build_compute_metrics(),
        callbacks=list(callbacks),
    )


def run(recipe: Recipe, resume: bool = False, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Trains, evaluates and saves the model a recipe describes; returns what is written to ``results.json``.

    Args:
        recipe: a validated recipe (``lsr_hf.recipe.load_recipe``).
        resume: continue from the last checkpoint in ``training.output_dir`` (an error if there is none).
        callbacks: extra ``TrainerCallback``s (progress hooks, tests).
    """
    started = time.perf_counter()
    # everything that can be checked without data, before any data is loaded (a dataset without a built-in spec
    # has its classes checked once loaded, still before any output is written)
    if recipe.data.builtin:
        recipe.loss.check_num_classes(get_spec(recipe.data.name).num_classes)
    args = recipe.training_arguments(remove_unused_columns=False, push_to_hub=False)
    output_dir = Path(args.output_dir)
    checkpoint = None
    if resume:
        checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
        if checkpoint is None:
            raise ValueError(f"--resume: no checkpoint-* folder in training.output_dir={str(output_dir)!r}")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=args.get_process_log_level())
    set_seed(args.seed)

    with args.main_process_first(desc="loading the dataset"):
        data = prepare_data(recipe.data)  # DataSourceError (Hub out of reach, unusable path) before any output
    recipe.loss.check_num_classes(data.num_classes)
    trainer = build_trainer(recipe, data, args, callbacks)
    if trainer.is_world_process_zero():
        write_resolved(recipe, output_dir / "recipe.yaml")
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()  # model.safetensors + config.json
    trainer.save_state()
    metrics: dict[str, Any] = dict(train_result.metrics)
    metrics.update(trainer.evaluate(data.validation, metric_key_prefix="eval"))
    test = trainer.predict(data.test, metric_key_prefix="test")
    trainer.log(test.metrics)  # adds test_ce / test_kl, and puts the test metrics in the logs
    metrics.update(test.metrics)

    results = {
        "metrics": metrics,
        "recipe": recipe.to_dict(),
        "source": recipe.source,
        "seed": args.seed,
        "resumed_from": checkpoint,
        "dataset": {
            "name": recipe.data.name,
            "path": recipe.data.path,
            "modality": data.modality,
            "num_classes": data.num_classes,
            "class_names": list(data.class_names),
            "sizes": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
            "num_skipped": data.num_skipped,
        },
        "environment": _environment(args.world_size),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    if trainer.is_world_process_zero():
        (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        logits = test.predictions[0] if isinstance(test.predictions, tuple) else test.predictions
        np.savez(output_dir / PREDICTIONS_FILE, logits=logits.astype(np.float32), labels=test.label_ids)
        write_model_card(output_dir, recipe, results)
        if recipe.hub.push:
            _push_to_hub(output_dir, recipe)
    trainer.accelerator.wait_for_everyone()
    return results


def _environment(world_size: int) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {"versions": versions, "python": platform.python_version(), "device": device, "world_size": world_size}


def _push_to_hub(output_dir: Path, recipe: Recipe) -> None:
    """Uploads the final model, card, recipe and results (not the checkpoints). The token is whatever
    huggingface_hub finds (``HF_TOKEN`` or ``hf auth login``); it is never read or written here."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo = api.create_repo(recipe.hub.repo_id, private=recipe.hub.private, exist_ok=True)
    api.upload_folder(
        repo_id=repo.repo_id,
        folder_path=str(output_dir),
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**", "*.pt", "*.pth"],
        commit_message=f"lsr-hf: {recipe.loss.method} on {recipe.data.name} ({recipe.model.name})",
    )
    logger.info("pushed %s to https://huggingface.co/%s", output_dir, repo.repo_id)


def summary_line(results: dict[str, Any]) -> str:
    """One line for the end of a run: test accuracy, ECE, wall time."""
    m = results["metrics"]
    return (
        f"test accuracy {m.get('test_accuracy', float('nan')):.4f}, test ECE {m.get('test_ece', float('nan')):.4f}, "
        f"test NLL {m.get('test_nll', float('nan')):.4f} in {results['wall_seconds']:.0f} s "
        f"({os.path.basename(results['source'])})"
    )
