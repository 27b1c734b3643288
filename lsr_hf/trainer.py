"""``OSTCTrainer``: a ``transformers.Trainer`` whose loss is the LSR-OS-TC objective (``lsr_hf.losses``)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import nested_gather

from lsr_hf.losses import IGNORE_INDEX, OSTCConfig, OSTCLoss, check_labels, is_soft, logits_of

RUNNING_LOSS_KEY = "lsr_hf.running_loss"  # in trainer_state.json's stateful_callbacks: the training-loss sum so far


class OSTCTrainer(Trainer):
    """Trainer for any HF model whose output has ``.logits`` (image, audio, text classifiers).

    What it changes, and only that:

    * the loss is ``OSTCLoss(ostc)`` on the model's logits; the model's own loss is never computed (labels are not
      passed to it). The loss is handed to ``Trainer`` as its ``compute_loss_func``, so Trainer treats every model the
      same way under gradient accumulation: it counts the labelled samples of the whole accumulation window
      (``num_items_in_batch``, summed over ranks) and the loss is ``sum / num_items_in_batch`` — one optimizer step
      with batch 8 × accumulation 1 equals one with batch 4 × accumulation 2;
    * the parts of the loss, ``ce`` and ``kl`` (means over the labelled samples since the last log of CE and of
      KL(q ‖ p_τ) before its weight α·w: Σ_batches Σ_i CE_i / Σ_batches n_b, so an uneven last batch weighs by its
      size and, for ``method="ce"``, ``eval_ce`` equals ``eval_loss``), are logged beside ``loss``
      (``eval_ce``/``eval_kl`` in evaluation);
    * labels may be class ids (B,) or soft targets (B, K) (``OSTCLoss``); a soft-label batch counts B items, not
      Trainer's B·K, in ``num_items_in_batch``;
    * ``mixup``: a callable ``(inputs, class ids) -> (mixed inputs, soft targets (B, K))`` — ``timm.data.Mixup``
      (mixup and/or CutMix), see ``lsr_hf.data.mixup.build_mixup`` — applied in ``compute_loss`` to the model's main
      input (``model.main_input_name``: ``pixel_values``, ``input_values``) of training batches only, after Trainer
      moved them to the device; evaluation and prediction keep the class ids. timm's Mixup needs an even batch: an
      odd batch (the last of an epoch) mixes its first B − 1 samples and the last one trains on its own label.
      With ``mixup``, every label must be a class id (-100, ignored, cannot be mixed: refused in the collator);
    * ``method="kd"`` takes teacher logits from ``teacher_model`` (frozen, eval mode, run under ``no_grad``);
    * labels are checked against the model's ``num_labels`` in the collator (``LabelCheckingCollator``: on the CPU,
      in the DataLoader workers), not in the loss, where on a GPU the check would cost a host sync every step;
    * ``--resume`` reproduces the uninterrupted run: evaluation leaves the global random generators (Python, NumPy,
      torch CPU and CUDA) as it found them (``preserved_rng``), so that a checkpoint saved before an evaluation —
      at the end of an epoch with ``save_strategy="steps"`` — holds the random state the next training step
      really starts from (Trainer restores it on resume; the evaluation's DataLoader draws a seed from torch's
      generator, which shifted every random augmentation and dropout mask after it); and the running sum of the
      training loss is kept in ``trainer_state.json``, so ``train_loss`` is the mean over all steps after a resume
      (Trainer starts the sum again at 0 and divides by all steps).

    ``args.label_smoothing_factor`` must be 0: Trainer applies it only inside the loss this class replaces, and with a
    smoothing method it would smooth twice. Use ``method="lsr"`` with ``alpha=ε`` for plain label smoothing.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: Any = None,
        *,
        ostc: OSTCConfig | Mapping[str, Any] | None = None,
        teacher_model: nn.Module | None = None,
        mixup: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
        **kwargs: Any,
    ) -> None:
        if mixup is not None and not callable(mixup):
            raise ValueError(
                f"mixup must be a callable (x, labels) -> (x, soft labels) such as timm.data.Mixup, got {mixup!r}"
            )
        self.mixup = mixup
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("OSTCTrainer computes its own loss; pass ostc=OSTCConfig(...) instead of compute_loss_func")
        ostc = as_ostc_config(ostc)
        smoothing = getattr(args, "label_smoothing_factor", 0.0)
        if smoothing:
            raise ValueError(
                f"label_smoothing_factor must be 0 with OSTCTrainer, got {smoothing!r}: the smoothing is set by "
                f"ostc (method={ostc.method!r}); for plain label smoothing use OSTCConfig(method='lsr', alpha={smoothing})"
            )
        if (ostc.spec.teacher == "logits") != (teacher_model is not None):
            raise ValueError(
                f"teacher_model is required for method={ostc.method!r}"
                if teacher_model is None
                else f"teacher_model is only used by method='kd', got method={ostc.method!r}"
            )
        super().__init__(model=model, args=args, compute_loss_func=OSTCLoss(ostc), **kwargs)
        self.ostc = ostc
        if self.args.label_names is None:  # the loss reads inputs["labels"]; the model's forward need not take them
            self.label_names = ["labels"]
        self._num_parameters: int | None = None  # for floating_point_ops, counted on first use
        num_labels = _num_labels(self.model)
        if num_labels is not None:
            ostc.check_num_classes(num_labels)
            # check labels on the CPU batch instead of syncing with the device in the loss
            self.data_collator = self.label_checked(self.data_collator)
            self.compute_loss_func.check_labels = False
        self.teacher_model = None
        if teacher_model is not None:
            teacher_labels = _num_labels(teacher_model)
            if None not in (num_labels, teacher_labels) and teacher_labels != num_labels:
                raise ValueError(
                    f"teacher_model has {teacher_labels} classes but the model has {num_labels}: "
                    "distillation needs the same label set"
                )
            teacher_model.eval().requires_grad_(False)
            self.teacher_model = self.accelerator.prepare_model(teacher_model, evaluation_mode=True)
        self._ostc_metrics: dict[str, dict[str, list[torch.Tensor]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        self.add_callback(_RunningLossRestore(self))

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """``Trainer.evaluate``, leaving the global random state as it was (``preserved_rng``)."""
        with preserved_rng(self.args.device):
            return super().evaluate(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.predict``, leaving the global random state as it was (``preserved_rng``)."""
        with preserved_rng(self.args.device):
            return super().predict(*args, **kwargs)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        # the loss summed so far: what Trainer logged (_total_loss_scalar) plus the steps since (_tr_loss)
        pending = nested_gather(self._tr_loss, self.args.parallel_mode).mean().item()
        self.state.stateful_callbacks[RUNNING_LOSS_KEY] = {"total_loss": self._total_loss_scalar + pending}
        super()._save_checkpoint(model, trial)

    def label_checked(self, collator: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``collator`` wrapped in a ``LabelCheckingCollator`` for the model's number of classes (as is, when that is
        unknown or it is wrapped already). Subclasses that build loaders with another collator wrap it with this.
        With ``mixup``, ignored labels (-100) are refused too: they cannot be mixed."""
        num_labels = _num_labels(self.model)
        if num_labels is None or collator is None or isinstance(collator, LabelCheckingCollator):
            return collator
        return LabelCheckingCollator(collator, num_labels, allow_ignored=self.mixup is None)

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | int | None:
        """Trainer's count of the labelled items of an accumulation window (labels ≠ -100), with a (B, K) soft-label
        batch counted as its B rows (Trainer alone would count its B·K entries)."""
        counted = [
            {**batch, "labels": torch.zeros(len(batch["labels"]), dtype=torch.long)}
            if isinstance(batch, Mapping) and is_soft(batch.get("labels"))
            else batch
            for batch in batch_samples
        ]
        return super()._get_num_items_in_batch(counted, device)

    def mix(self, inputs: dict[str, Any], labels: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor]:
        """``inputs`` with the main input mixed by ``self.mixup`` and the soft targets (B, K) it returns. An odd
        batch mixes its first B − 1 samples (timm's Mixup needs an even count); the last keeps its one-hot label."""
        name = getattr(self.model, "main_input_name", "input_ids")
        x = inputs.get(name)
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
            raise ValueError(
                f"mixup mixes the model's main input {name!r}, which must be a floating-point tensor (images, audio), "
                f"got {getattr(x, 'dtype', type(x).__name__)}; switch mixup off for this model"
            )
        if is_soft(labels) or labels.dtype.is_floating_point:
            raise ValueError("mixup mixes class ids of shape (batch,); this batch already has soft labels")
        cutmix = getattr(self.mixup, "cutmix_alpha", 0.0) > 0 or getattr(self.mixup, "cutmix_minmax", None) is not None
        if cutmix and x.dim() != 4:
            raise ValueError(
                f"CutMix cuts boxes out of images (batch, channels, height, width); {name!r} has shape "
                f"{tuple(x.shape)}: set data.cutmix_alpha to 0 (mixup alone works on any input)"
            )
        num_classes = getattr(self.mixup, "num_classes", None) or _num_labels(self.model)
        even = len(x) - len(x) % 2
        mixed_x, mixed_y = self.mixup(x[:even], labels[:even]) if even else (x[:0], x.new_zeros(0, num_classes))
        if even < len(x):  # the odd one out keeps its own label
            rest = nn.functional.one_hot(labels[even:], num_classes).to(mixed_y.dtype)
            mixed_x, mixed_y = torch.cat((mixed_x, x[even:])), torch.cat((mixed_y, rest))
        return {**inputs, name: mixed_x}, mixed_y

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """Trainer's estimate (6 × input elements × parameters), with the parameter count taken once instead of on
        every step (counting walks every module: measurable next to a small model's step)."""
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._num_parameters is None:
            self._num_parameters = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main_input].numel() * self._num_parameters

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        labels = inputs["labels"]
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        if self.mixup is not None and model.training:
            model_inputs, labels = self.mix(model_inputs, labels)
        outputs = model(**model_inputs)
        logits = logits_of(outputs)
        if not isinstance(outputs, Mapping):  # Trainer's prediction_step reads a tuple as (loss, logits, ...)
            outputs = {"logits": logits}
        teacher_logits = None
        if self.teacher_model is not None:
            with torch.no_grad():
                teacher_logits = logits_of(self.teacher_model(**model_inputs))
        parts = self.compute_loss_func.components(logits, labels, teacher_logits, num_items_in_batch)
        loss = parts["total"]
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # num_items_in_batch counts all ranks and DDP averages gradients: scale as Trainer.compute_loss does
            loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        # sums and counts, so that the logged means weigh every labelled sample equally (uneven last batches)
        count = labels.new_tensor(len(labels)) if is_soft(labels) else (labels != IGNORE_INDEX).sum()
        count = count.to(parts["ce"].dtype)
        store = self._ostc_metrics["train" if model.training else "eval"]
        store["ce"].append(parts["ce"] * count)
        store["kl"].append(parts["kl"] * count)
        store["count"].append(count)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds ``ce`` and ``kl`` since the last log to ``logs``: Σ (per-sample values) / Σ (labelled samples) over
        all batches and ranks, i.e. the per-sample mean, whatever the batch sizes."""
        # evaluate() logs "<prefix>_loss" (eval_loss, test_loss); training logs "loss", and "train_loss" at the end
        eval_key = next((k for k in logs if k.endswith("_loss") and k != "train_loss"), None)
        prefix = "" if eval_key is None else eval_key[: -len("loss")]
        store = self._ostc_metrics["train" if eval_key is None else "eval"]
        if store:
            totals = torch.stack([torch.stack(store[name]).sum() for name in ("ce", "kl", "count")])
            if self.accelerator.num_processes > 1:
                totals = self.accelerator.reduce(totals, reduction="sum")
            means = totals[:2] / totals[2].clamp(min=1)
            logs.update({f"{prefix}{name}": round(value, 6) for name, value in zip(("ce", "kl"), means.tolist())})
            store.clear()
        super().log(logs, start_time)


class LabelCheckingCollator:
    """Runs ``collator``, then ``lsr_hf.losses.check_labels`` on the batch's ``labels`` (``ValueError`` naming the
    allowed range [0, K) or -100, or what is wrong with soft targets). Runs where the collator runs: in a DataLoader
    worker, on the CPU, for free. ``allow_ignored=False`` refuses -100 as well (mixup cannot mix ignored labels)."""

    def __init__(self, collator: Callable[[Any], Any], num_classes: int, allow_ignored: bool = True) -> None:
        self.collator = collator
        self.num_classes = num_classes
        self.allow_ignored = allow_ignored

    def __call__(self, features: Any) -> Any:
        batch = self.collator(features)
        labels = batch.get("labels") if isinstance(batch, Mapping) else None
        if labels is not None:
            labels = torch.as_tensor(labels)
            check_labels(labels, self.num_classes)
            if not self.allow_ignored and not is_soft(labels) and bool((labels == IGNORE_INDEX).any()):
                raise ValueError(
                    f"labels must be in [0, {self.num_classes}) with mixup: {IGNORE_INDEX} (ignored) cannot be mixed"
                )
        return batch

    def __repr__(self) -> str:
        ignored = "" if self.allow_ignored else ", allow_ignored=False"
        return f"{type(self).__name__}({self.collator!r}, num_classes={self.num_classes}{ignored})"


def as_ostc_config(ostc: OSTCConfig | Mapping[str, Any] | None) -> OSTCConfig:
    """``ostc`` as an ``OSTCConfig``: as is, built from a mapping of its fields, or the defaults for None; anything
    else, or a mapping with a key that is not a field, is a ``ValueError``."""
    if ostc is None:
        return OSTCConfig()
    if isinstance(ostc, OSTCConfig):
        return ostc
    if isinstance(ostc, Mapping):
        fields = list(OSTCConfig.__dataclass_fields__)
        unknown = [str(k) for k in ostc if k not in fields]
        if unknown:
            raise ValueError(f"ostc has unknown field(s) {', '.join(unknown)}; OSTCConfig's fields are: {', '.join(fields)}")
        return OSTCConfig(**ostc)
    raise ValueError(f"ostc must be an OSTCConfig or a mapping of its fields, got {type(ostc).__name__}")


@contextmanager
def preserved_rng(device: torch.device | str | None = None) -> Iterator[None]:
    """Restores the global random state after the block: Python's ``random``, NumPy's, torch's CPU generator and,
    for a CUDA ``device``, that device's generator. What runs inside draws from them as usual."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    device = torch.device(device) if device is not None else torch.device("cpu")
    cuda = [device] if device.type == "cuda" and torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class _RunningLossRestore(TrainerCallback):
    """On a resumed run, puts the training-loss sum saved in the checkpoint (``RUNNING_LOSS_KEY``) back into the
    trainer, which Trainer itself restarts at 0."""

    def __init__(self, trainer: OSTCTrainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs: Any) -> None:
        saved = state.stateful_callbacks.get(RUNNING_LOSS_KEY)
        if isinstance(saved, Mapping) and isinstance(saved.get("total_loss"), (int, float)) and state.global_step:
            self.trainer._total_loss_scalar = float(saved["total_loss"])


def _num_labels(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_labels", None)
