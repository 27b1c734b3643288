"""Library-level reliability (issue 31): what the loss and OSTCTrainer say about bad input, and what evaluation
leaves of the random state. The command-line cases are in test_adversarial.py, resume in test_resume.py."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn
from transformers import TrainingArguments

from lsr_hf import OSTCConfig, OSTCLoss, OSTCTrainer
from lsr_hf.trainer import preserved_rng

K = 4


def test_float_labels_are_a_value_error_naming_the_dtype() -> None:
    logits = torch.randn(3, K)
    for labels in (torch.tensor([0.0, 1.0, 2.0]), torch.tensor([True, False, True])):
        with pytest.raises(ValueError, match=r"labels of shape \(batch,\) must be integer class ids \(torch.long\) .* got dtype torch\."):
            OSTCLoss(OSTCConfig())(logits, labels)
        with pytest.raises(ValueError, match="got dtype"):  # also where the labels were checked before
            OSTCLoss(OSTCConfig(method="ce"), check_labels=False)(logits, labels)


def test_model_outputs_without_logits_are_a_value_error_and_tuples_and_dicts_are_read() -> None:
    loss = OSTCLoss(OSTCConfig(method="ce"))
    logits, labels = torch.randn(3, K), torch.tensor([0, 1, 3])
    expected = nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(loss({"logits": logits}, labels), expected)
    assert torch.allclose(loss((logits, torch.zeros(1)), labels), expected)
    with pytest.raises(ValueError, match=r"the model output has no 'logits' \(its keys: scores\)"):
        loss({"scores": logits}, labels)
    with pytest.raises(ValueError, match="the model output is str, not logits"):
        loss("logits", labels)
    with pytest.raises(ValueError, match="the model output is tuple, not logits"):
        loss((), labels)


class DictModel(nn.Module):
    """A classifier that returns a plain dict (or a tuple): no ModelOutput, no config."""

    def __init__(self, key: str = "logits", as_tuple: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(2, K)
        self.key, self.as_tuple = key, as_tuple

    def forward(self, x):
        logits = self.linear(x)
        return (logits,) if self.as_tuple else {self.key: logits}


def toy_items(n: int = 8) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return [{"x": x[i], "labels": i % K} for i in range(n)]


def trainer_for(model: nn.Module, tmp_path, **kwargs) -> OSTCTrainer:
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, use_cpu=True, report_to="none",
        disable_tqdm=True, save_strategy="no", logging_steps=1, remove_unused_columns=False,
    )  # fmt: skip
    return OSTCTrainer(model=model, args=args, train_dataset=toy_items(), eval_dataset=toy_items(), **kwargs)


def test_trainer_reads_dict_and_tuple_outputs_and_names_a_dict_without_logits(tmp_path) -> None:
    for model in (DictModel(), DictModel(as_tuple=True)):
        trainer = trainer_for(model, tmp_path)
        trainer.train()
        metrics = trainer.evaluate()
        assert np.isfinite(metrics["eval_loss"])
        predictions = trainer.predict(toy_items()).predictions
        assert predictions.shape == (8, K)
    with pytest.raises(ValueError, match=r"the model output has no 'logits' \(its keys: scores\)"):
        trainer_for(DictModel(key="scores"), tmp_path).train()


def test_ostc_given_as_a_dict_is_read_and_a_bad_one_is_a_value_error(tmp_path) -> None:
    trainer = trainer_for(DictModel(), tmp_path, ostc={"alpha": 0.2, "method": "lsr"})
    assert trainer.ostc == OSTCConfig(method="lsr", alpha=0.2)
    with pytest.raises(ValueError, match="ostc has unknown field"):
        trainer_for(DictModel(), tmp_path, ostc={"alpah": 0.2})
    with pytest.raises(ValueError, match="alpha must be in"):
        trainer_for(DictModel(), tmp_path, ostc={"alpha": 2})
    with pytest.raises(ValueError, match="ostc must be an OSTCConfig or a mapping of its fields, got float"):
        trainer_for(DictModel(), tmp_path, ostc=0.3)


def test_preserved_rng_puts_every_global_generator_back() -> None:
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    with preserved_rng("cpu"):
        torch.rand(10), random.random(), np.random.rand(4)
    assert torch.equal(torch.rand(3), expected[0])
    assert (random.random(), np.random.rand()) == expected[1:]


def test_evaluation_leaves_the_random_state_as_it_found_it(tmp_path) -> None:
    """Trainer's evaluation loader draws a seed from torch's generator; OSTCTrainer's does not move it (the cause
    of issue 31's resume difference at an epoch boundary)."""
    trainer = trainer_for(DictModel(), tmp_path)
    before = torch.get_rng_state()
    trainer.evaluate()
    trainer.predict(toy_items())
    assert torch.equal(torch.get_rng_state(), before)
