"""The training job: ``run(recipe)`` does what ``scripts/train.py`` (and ``scripts/sweep.py``) run.

Order, as in HF's example scripts: output folder check → seed → data → model → OSTCTrainer → train (or resume)
→ evaluate on the validation and test splits → save → the test logits, the model card and ``results.json`` (last, so
it exists only for a finished run) → push to the Hub when the recipe asks. A diverged loss stops the job before the
save (``lsr_hf.job.guards``); a non-empty output folder stops it before the data is loaded (``lsr_hf.job.outputs``), and so
does a push that cannot happen (``lsr_hf.job.hub.check_push``: offline, no token, no write access).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, TrainerCallback, TrainingArguments, set_seed
from transformers.utils import logging as hf_logging

from lsr_hf.data import PreparedData, prepare_data
from lsr_hf.data.image import ImageBatchTransform, ImageCollator
from lsr_hf.data.mixup import build_mixup
from lsr_hf.errors import DataError, OutputWriteError, TrainingInterrupted
from lsr_hf.job.guards import DivergenceGuard, GracefulInterrupt, uniform_prediction_loss
from lsr_hf.job.hub import TRAINING_ARGS_FILE, HubError, PushFailed, check_push, push_run, retry_command
from lsr_hf.metrics import build_compute_metrics
from lsr_hf.job.model_card import write_model_card
from lsr_hf.models import build_audio_model, build_image_model
from lsr_hf.models.audio import predict_segment_logits
from lsr_hf.job.outputs import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    interrupted_message,
    last_complete_checkpoint,
    plan_output_dir,
    write_json,
)
from lsr_hf.job.processing import attach_preprocessing
from lsr_hf.recipe import Recipe, check_recipe, write_resolved
from lsr_hf.schedule import ScheduleConfig, multistep_with_warmup
from lsr_hf.job.timing import EpochTimer
from lsr_hf.trainer import OSTCTrainer

logger = logging.getLogger(__name__)
SHOWN_SKIPPED = 100  # results.json names at most this many skipped files per split (and counts all)
PACKAGES = ("lsr-hf", "torch", "transformers", "accelerate", "timm", "datasets", "evaluate", "torchaudio")


class _JobTrainer(OSTCTrainer):
    """``OSTCTrainer`` plus what the job needs:

    * ``train_collator`` for the training loader while ``data_collator`` serves evaluation;
    * ``train_transform`` / ``eval_transform``: applied to the batch's ``pixel_values`` once Trainer has moved the batch
      to the device (images: DESIGN §4's augmentation in training, normalisation in both, on the GPU when there is
      one), chosen by whether the model is in training mode;
    * the recipe's step schedule (``schedule.milestones``) when it has one;
    * no training batch of a single example: when the training split is one example more than a multiple of the
      batch, that example is left out of each epoch (``dataloader_drop_last`` for the training loader only), since
      BatchNorm cannot train on a batch of one.
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
        self._warned_lone_example = False

    def get_train_dataloader(self):
        eval_collator, self.data_collator = self.data_collator, self._train_collator
        drop_last, self.args.dataloader_drop_last = self.args.dataloader_drop_last, self._drop_lone_example()
        try:  # the DataLoader keeps the collator and drop_last it was built with
            return super().get_train_dataloader()
        finally:
            self.data_collator = eval_collator
            self.args.dataloader_drop_last = drop_last

    def _drop_lone_example(self) -> bool:
        if self.args.dataloader_drop_last:
            return True
        batch = self.args.per_device_train_batch_size * max(self.args.world_size, 1)
        lone = len(self.train_dataset) % batch == 1
        if lone and not self._warned_lone_example:
            logger.warning(
                "the training split has %d examples, one more than a multiple of the batch (%d): each epoch leaves one "
                "(random) example out, since BatchNorm cannot train on a batch of one", len(self.train_dataset), batch,
            )  # fmt: skip
            self._warned_lone_example = True
        return lone

    def _prepare_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        inputs = super()._prepare_inputs(inputs)
        transform = self._transforms[self.model.training]
        if transform is not None:
            inputs["pixel_values"] = transform.transform(inputs["pixel_values"])
        return inputs

    def _save_checkpoint(self, model, trial) -> None:
        with writing_outputs(self.args.output_dir, f"checkpoint-{self.state.global_step}"):
            super()._save_checkpoint(model, trial)

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
    model = build_model(recipe, data)
    # images: the preprocessing goes into config.json; audio: a feature extractor Trainer saves in every checkpoint
    processor = attach_preprocessing(model, data)
    return _JobTrainer(
        model=model,
        processing_class=processor,
        args=args,
        ostc=recipe.loss,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=eval_collator,
        train_collator=train_collator,
        train_transform=train_transform,
        eval_transform=eval_transform,
        schedule=recipe.schedule,
        mixup=build_mixup(recipe.data, data.num_classes, data.modality),  # training batches only
        compute_metrics=build_compute_metrics(),
        callbacks=list(callbacks),
    )


def run(
    recipe: Recipe,
    resume: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
    overwrite: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Trains, evaluates and saves the model a recipe describes; returns what is written to ``results.json``.

    Args:
        recipe: a validated recipe (``lsr_hf.recipe.load_recipe``).
        resume: continue from the last complete checkpoint in ``training.output_dir``; on a finished run of the
            same recipe, return its stored results without training.
        callbacks: extra ``TrainerCallback``s (progress hooks, tests).
        overwrite: delete an earlier run in ``training.output_dir`` and train from scratch (with ``resume``: only
            when there is no complete checkpoint to resume from).
        command: the command line recorded in ``results.json`` as the one that trains this run (a sweep gives the
            equivalent ``scripts/train.py`` command); default: this process's own (``sys.argv``).

    Raises:
        lsr_hf.job.hub.HubError: ``hub.push`` is on but the push cannot happen (offline mode, no token, no write access
            to ``hub.repo_id``); raised before the output folder is touched or any data is loaded.
        lsr_hf.job.hub.PushFailed: the upload after training failed; the finished run is kept on disk and the message
            gives the ``lsr-hf push`` command that retries it.
        lsr_hf.errors.OutputDirError: ``training.output_dir`` holds another run (and neither flag says what to do
            with it), is not writable, or has nothing to resume; raised before any data is loaded.
        lsr_hf.errors.DataError: data that cannot be trained on (``lsr_hf.data.prepare_data``).
        lsr_hf.errors.TrainingDiverged: the loss became non-finite or exploded (``lsr_hf.job.guards``); nothing is saved.
        lsr_hf.errors.OutputWriteError: a checkpoint or the model could not be written (a full disk); the complete
            checkpoints saved before are kept.
        lsr_hf.errors.TrainingInterrupted: Ctrl-C (a ``KeyboardInterrupt``): during training, the run stops at the
            end of the step with a checkpoint of it; the message names it and the ``--resume`` command.
    """
    started = time.perf_counter()
    # everything that can be checked without data, before any data is loaded (load_recipe did it already; a
    # dataset without a built-in spec has its classes checked once loaded, still before any output is written)
    check_recipe(recipe)
    if recipe.hub.push:  # before the output folder is touched (--overwrite deletes) and before any data is loaded
        check_push(recipe.hub.repo_id, recipe.hub.private)
    command = command if command is not None else shlex.join(sys.argv)
    args = recipe.training_arguments(remove_unused_columns=False, push_to_hub=False)
    output_dir = Path(args.output_dir)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=args.get_process_log_level())
    with args.main_process_first(local=False, desc="checking the output folder"):
        plan = plan_output_dir(output_dir, recipe.to_dict(), resume, overwrite, args.process_index == 0)
    if plan.finished is not None:
        logger.warning(
            "training.output_dir=%r holds a finished run of this recipe: nothing to resume (pass --overwrite to "
            "train it again)", str(output_dir),
        )  # fmt: skip
        return plan.finished
    checkpoint = plan.checkpoint
    set_seed(args.seed)
    try:
        return _train(recipe, args, checkpoint, callbacks, command, started)
    except KeyboardInterrupt as err:  # Ctrl-C outside training, or a second one: say what there is to resume
        if isinstance(err, TrainingInterrupted):
            raise
        raise TrainingInterrupted(interrupted_message(output_dir, command)) from None


def _train(
    recipe: Recipe,
    args: TrainingArguments,
    checkpoint: str | None,
    callbacks: Sequence[TrainerCallback],
    command: str,
    started: float,
) -> dict[str, Any]:
    """``run`` once the output folder is settled: data, trainer, training, evaluation, outputs."""
    output_dir = Path(args.output_dir)
    with args.main_process_first(desc="loading the dataset"):
        data = prepare_data(recipe.data)  # DataError / DataSourceError (Hub out of reach, unusable path) first
    try:
        recipe.loss.check_num_classes(data.num_classes)
    except ValueError as err:  # the classes of a dataset without a built-in spec are known only now
        key = "loss." if str(err).startswith("correct_prob") else ""
        raise DataError(f"{recipe.source}: {key}{err} ({recipe.data.path or recipe.data.name})") from err
    timer = EpochTimer()
    guard = DivergenceGuard(uniform_prediction_loss(recipe.loss, data.num_classes))
    interrupt = GracefulInterrupt(enabled=args.world_size == 1)
    trainer = build_trainer(recipe, data, args, [*callbacks, timer, guard, interrupt])
    if trainer.is_world_process_zero():
        with writing_outputs(output_dir, "recipe.yaml"):
            write_resolved(recipe, output_dir / "recipe.yaml")
    with transformers_progress_bars(enabled=not args.disable_tqdm):  # also the checkpoints' shard-writing bar
        with interrupt:
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
        if interrupt.requested:
            raise TrainingInterrupted(
                interrupted_message(output_dir, command, interrupt.step, trainer.state.max_steps)
            )
        guard.check(train_result.metrics, trainer.state.global_step, args)  # the steps after the last logging step
        metrics: dict[str, Any] = dict(train_result.metrics)
        seconds_per_epoch = timer.seconds_per_epoch()
        if seconds_per_epoch is not None:
            metrics["train_seconds_per_epoch"] = round(seconds_per_epoch, 3)
        metrics.update(trainer.evaluate(data.validation, metric_key_prefix="eval"))
        test = trainer.predict(data.test, metric_key_prefix="test")
        trainer.log(test.metrics)  # adds test_ce / test_kl, and puts the test metrics in the logs
        metrics.update(test.metrics)
        guard.check(metrics, trainer.state.global_step, args)
        with writing_outputs(output_dir, "the model"):
            trainer.save_model()  # model.safetensors + config.json (+ training_args.bin, a pickle: never pushed)
            trainer.save_state()
            if trainer.is_world_process_zero():  # the training arguments as JSON, the form a push uploads
                write_json(output_dir / TRAINING_ARGS_FILE, json.loads(args.to_json_string()))

    results = {
        "metrics": metrics,
        "recipe": recipe.to_dict(),
        "source": recipe.source,
        "command": command,
        "seed": args.seed,
        "resumed_from": checkpoint,
        "dataset": {
            "name": recipe.data.name,
            "path": recipe.data.path,
            "modality": data.modality,
            "num_classes": data.num_classes,
            "class_names": list(data.class_names),
            "sizes": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
            "num_skipped": {name: len(notes) for name, notes in data.skipped.items()},
            "skipped": {name: notes[:SHOWN_SKIPPED] for name, notes in data.skipped.items() if notes},
        },
        "environment": _environment(args.world_size),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    if trainer.is_world_process_zero():
        logits = test.predictions[0] if isinstance(test.predictions, tuple) else test.predictions
        extra = {}
        if data.modality == "audio":  # each segment's logits too, so that clip votes can be compared afterwards
            extra["segment_logits"] = predict_segment_logits(
                trainer.model, data.test, data.eval_collator, args.per_device_eval_batch_size
            )
        with writing_outputs(output_dir, "the results"):
            np.savez(output_dir / PREDICTIONS_FILE, logits=logits.astype(np.float32), labels=test.label_ids, **extra)
            write_model_card(output_dir, recipe, results)
            write_json(output_dir / RESULTS_FILE, results)  # last: it marks a finished run (lsr_hf.job.outputs)
    push_failed: PushFailed | None = None
    if trainer.is_world_process_zero() and recipe.hub.push:
        try:
            _push_to_hub(output_dir, recipe)
        except PushFailed as err:  # raised once the other processes are done too (none waits forever)
            push_failed = err
    trainer.accelerator.wait_for_everyone()
    if push_failed is not None:
        raise push_failed
    return results


@contextmanager
def writing_outputs(output_dir: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turns a failed write in the block (``OSError``: a full disk, a vanished folder; safetensors'
    ``SafetensorError``) into ``OutputWriteError``: what could not be written, why, the last complete checkpoint
    (kept) and what to do."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as err:
        if isinstance(err, OutputWriteError):
            raise
        last = last_complete_checkpoint(output_dir)
        kept = f"the last complete checkpoint, {last.name}, is kept" if last else "no complete checkpoint was saved yet"
        raise OutputWriteError(
            f"could not write {what} in training.output_dir={str(output_dir)!r}: {type(err).__name__}: "
            f"{str(err).strip() or 'no reason given'}; {kept}. Free some disk space (or fix the folder), then run the "
            f"same command with --resume{'' if last else ' --overwrite'}"
        ) from err


@contextmanager
def transformers_progress_bars(enabled: bool) -> Iterator[None]:
    """Turns transformers' (and huggingface_hub's) progress bars off for the block when ``enabled`` is False, and
    back to what they were after it. ``training.disable_tqdm`` silences only the Trainer's own bars; this also
    silences the "Writing model shards" bar of every checkpoint save, which would otherwise fill a sweep's
    ``train.log``."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            hf_logging.enable_progress_bar()


def _environment(world_size: int) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "versions": versions,
        "python": platform.python_version(),
        "device": device,
        "world_size": world_size,
        "torch_threads": torch.get_num_threads(),  # CPU results depend on it (the order of float reductions)
    }


def _push_to_hub(output_dir: Path, recipe: Recipe) -> None:
    """Uploads the finished run (``lsr_hf.job.hub.push_run``: the model, card, recipe, results; not the checkpoints, no
    pickles, no absolute paths). The token is whatever huggingface_hub finds (``HF_TOKEN`` or ``hf auth login``);
    it is never read or written here. A failure raises ``PushFailed`` naming the command that retries the push; the
    run folder stays as it is."""
    repo_id, private = str(recipe.hub.repo_id), recipe.hub.private
    try:
        url = push_run(output_dir, repo_id, private)
    except HubError as err:  # the token or the network went away during training
        raise PushFailed(
            f"the push to {repo_id} failed after training: {err}. The finished run in {str(output_dir)!r} is kept; "
            f"retry with: {retry_command(output_dir, repo_id, private)}"
        ) from err
    logger.info("pushed %s to %s", output_dir, url)
    print(f"pushed {output_dir} to {url}")


def summary_line(results: dict[str, Any]) -> str:
    """One line for the end of a run: test accuracy, ECE, wall time."""
    m = results["metrics"]
    return (
        f"test accuracy {m.get('test_accuracy', float('nan')):.4f}, test ECE {m.get('test_ece', float('nan')):.4f}, "
        f"test NLL {m.get('test_nll', float('nan')):.4f} in {results['wall_seconds']:.0f} s "
        f"({os.path.basename(results['source'])})"
    )
