"""Mixup and CutMix for training batches: ``timm.data.Mixup`` built from a recipe's ``data:`` section.

A mixed batch pairs sample i with sample B−1−i (timm's ``mode="batch"``: one λ per batch):

    mixup:   x̃ = λ·x + (1 − λ)·x.flip(0),                              λ ~ Beta(mixup_alpha, mixup_alpha)
    CutMix:  x̃ = x with a box of area ≈ (1 − λ)·H·W pasted from x.flip(0), λ ~ Beta(cutmix_alpha, cutmix_alpha),
             λ then corrected to the box's real area
    target:  ỹ = λ·onehot(c) + (1 − λ)·onehot(c.flip(0))                (soft, (B, K), rows sum to 1)

and the loss takes ỹ as a soft target (``lsr_hf.losses``: CE = −Σ ỹ log p, teacher q(ỹ) = b + (a − b)·ỹ). timm's own
target smoothing is off (``label_smoothing=0``): the smoothing is the loss's (``loss.method``), never applied twice.
``OSTCTrainer(mixup=...)`` applies it to training batches only, on the device, after the images were augmented
and normalised; evaluation keeps the class ids.
"""

from __future__ import annotations

from typing import Any

from lsr_hf.data.config import DataConfig
from lsr_hf.errors import DataError


def build_mixup(cfg: DataConfig, num_classes: int, modality: str = "image") -> Any | None:
    """A ``timm.data.Mixup`` for ``cfg``'s ``mixup_alpha``, ``cutmix_alpha``, ``mixup_prob`` and
    ``mixup_switch_prob`` over ``num_classes`` classes (``label_smoothing=0``), or None when mixing is off
    (``cfg.mixup_enabled`` is false). CutMix on non-image data (``modality``) is a ``DataError``."""
    if not cfg.mixup_enabled:
        return None
    if cfg.cutmix_alpha > 0 and modality != "image":
        raise DataError(
            f"data.cutmix_alpha must be 0 for {modality} data: CutMix cuts image boxes, got {cfg.cutmix_alpha!r} "
            "(data.mixup_alpha works on any input)"
        )
    from timm.data import Mixup  # timm is a dependency of the models; imported only when mixing is asked for

    return Mixup(
        mixup_alpha=cfg.mixup_alpha,
        cutmix_alpha=cfg.cutmix_alpha,
        prob=cfg.mixup_prob,
        switch_prob=cfg.mixup_switch_prob,
        mode="batch",
        label_smoothing=0.0,
        num_classes=num_classes,
    )
