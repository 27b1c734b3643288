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

from lsr_hf.losses import OSTCConfig, OSTCLoss, check_labels, logits_of

RUNNING_LOSS_KEY = "lsr_hf.running_loss"  # in trainer_state.json's stateful_callbacks: the training-loss sum so far


class OSTCTrainer(Trainer):
    """Trainer for any HF model whose output has ``.logits`` (image, audio, text classifiers).

    What it changes, and only that:

    * the loss is ``OSTCLoss(ostc)`` on the model's logits; the model's own loss is never computed (labels are not
      passed to it). The loss is handed to ``Trainer`` as its ``compute_loss_func``, so Trainer treats every model the
      same way under gradient accumulation: it counts the labelled samples of the whole accumulation window
      (``num_items_in_batch``, summed over ranks) and the loss is ``sum / num_items_in_batch`` — one optimizer step
      with batch 8 × accumulation 1 equals one with batch 4 × accumulation 2;
    * the parts of the loss, ``ce`` and ``kl`` (batch means of CE and of KL(q ‖ p_τ) before its weight α·w), are
      logged beside ``loss`` (``eval_ce``/``eval_kl`` in evaluation);
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
        **kwargs: Any,
    ) -> None:
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("OSTCTrainer computes its own loss; pass ostc=OSTCConfig(...) instead of compute_loss_func")
        ostc = as_ostc_config(ostc)
        smoothing = getattr(args, "label_smoothing_factor", 0.0)
        if smoothing:
            raise ValueError(
                f"label_smoothing_factor must be 0 with OSTCTrainer, got {smoothing!r}: the smoothing is set by "
                f"ostc (method={ostc.method!r}); for plain label smoothing use OSTCConfig(method='lsr', alpha={smoothing})"
            )
        if (ostc.method == "kd") != (teacher_model is not None):
            raise ValueError(
                "teacher_model is required for method='kd'"
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
        unknown or it is wrapped already). Subclasses that build loaders with another collator wrap it with this."""
        num_labels = _num_labels(self.model)
        if num_labels is None or collator is None or isinstance(collator, LabelCheckingCollator):
            return collator
        return LabelCheckingCollator(collator, num_labels)

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
        store = self._ostc_metrics["train" if model.training else "eval"]
        store["ce"].append(parts["ce"])
        store["kl"].append(parts["kl"])
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds the mean ``ce`` and ``kl`` since the last log (averaged over ranks) to ``logs``."""
        # evaluate() logs "<prefix>_loss" (eval_loss, test_loss); training logs "loss", and "train_loss" at the end
        eval_key = next((k for k in logs if k.endswith("_loss") and k != "train_loss"), None)
        prefix = "" if eval_key is None else eval_key[: -len("loss")]
        store = self._ostc_metrics["train" if eval_key is None else "eval"]
        if store:
            names = sorted(store)
            means = torch.stack([torch.stack(store[name]).mean() for name in names])
            if self.accelerator.num_processes > 1:
                means = self.accelerator.reduce(means, reduction="mean")
            logs.update({f"{prefix}{name}": round(value, 6) for name, value in zip(names, means.tolist())})
            store.clear()
        super().log(logs, start_time)


class LabelCheckingCollator:
    """Runs ``collator``, then ``lsr_hf.losses.check_labels`` on the batch's ``labels`` (``ValueError`` naming the
    allowed range [0, K) or -100). Runs where the collator runs: in a DataLoader worker, on the CPU, for free."""

    def __init__(self, collator: Callable[[Any], Any], num_classes: int) -> None:
        self.collator = collator
        self.num_classes = num_classes

    def __call__(self, features: Any) -> Any:
        batch = self.collator(features)
        labels = batch.get("labels") if isinstance(batch, Mapping) else None
        if labels is not None:
            check_labels(torch.as_tensor(labels), self.num_classes)
        return batch

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.collator!r}, num_classes={self.num_classes})"


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
