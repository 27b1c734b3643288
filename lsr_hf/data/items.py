"""``StackedItems``: a batch of dataset items kept as stacked tensors, what ``__getitems__`` returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class StackedItems(Sequence):
    """A list of items ``{input_name: inputs[i], "labels": int(labels[i])}`` stored as two stacked tensors.

    ``torch.utils.data.DataLoader`` calls a dataset's ``__getitems__`` with a whole batch of indices and hands the
    result to the collator. Returning this instead of a list of dicts costs one gather per batch; it still reads
    like ``[dataset[i] for i in indices]``, so any collator works on it, and ours take the tensors as they are.
    """

    def __init__(self, input_name: str, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.input_name = input_name
        self.inputs = inputs
        self.labels = labels

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        return {self.input_name: self.inputs[i], "labels": int(self.labels[i])}
