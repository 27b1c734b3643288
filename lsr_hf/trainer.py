"""``OSTCTrainer``: a ``transformers.Trainer`` whose loss is the LSR-OS-TC objective (``lsr_hf.losses``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from lsr_hf.losses import OSTCConfig, OSTCLoss


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
    * ``method="kd"`` takes teacher logits from ``teacher_model`` (frozen, eval mode, run under ``no_grad``).

    ``args.label_smoothing_factor`` must be 0: Trainer applies it only inside the loss this class replaces, and with a
    smoothing method it would smooth twice. Use ``method="lsr"`` with ``alpha=ε`` for plain label smoothing.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: Any = None,
        *,
        ostc: OSTCConfig | None = None,
        teacher_model: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("OSTCTrainer computes its own loss; pass ostc=OSTCConfig(...) instead of compute_loss_func")
        ostc = ostc if ostc is not None else OSTCConfig()
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
        num_labels = _num_labels(self.model)
        if num_labels is not None:
            ostc.check_num_classes(num_labels)
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
        teacher_logits = None
        if self.teacher_model is not None:
            with torch.no_grad():
                teacher_logits = self.teacher_model(**model_inputs).logits
        parts = self.compute_loss_func.components(outputs, labels, teacher_logits, num_items_in_batch)
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


def _num_labels(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_labels", None)
