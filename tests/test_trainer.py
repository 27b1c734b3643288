"""OSTCTrainer on three kinds of HF model built offline from configs: a timm net through
TimmWrapperForImageClassification, a 2-layer BERT, and a tiny Wav2Vec2 audio classifier."""

import copy

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
    Trainer,
    TrainingArguments,
    Wav2Vec2Config,
    Wav2Vec2ForSequenceClassification,
)

from lsr_hf import OSTCConfig, OSTCLoss, OSTCTrainer
from lsr_hf.trainer import LabelCheckingCollator

NUM_LABELS = 3


def tiny_bert():
    cfg = BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=NUM_LABELS, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(cfg)


def tiny_timm_vit():
    # a ViT: LayerNorm, no BatchNorm and no dropout, so split batches give the same gradients
    cfg = TimmWrapperConfig(
        architecture="vit_tiny_patch16_224",
        model_args=dict(img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2),
        num_labels=NUM_LABELS,
    )
    return TimmWrapperForImageClassification(cfg)


def tiny_wav2vec2():
    cfg = Wav2Vec2Config(
        vocab_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(4, 4), conv_kernel=(8, 4), num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2, num_labels=NUM_LABELS, classifier_proj_size=8,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, mask_feature_prob=0.0,
    )  # fmt: skip
    return Wav2Vec2ForSequenceClassification(cfg)


class ToyDataset(torch.utils.data.Dataset):
    """A fixed, learnable toy problem per modality; label -100 marks ignored rows."""

    def __init__(self, kind, n, ignore=()):
        g = torch.Generator().manual_seed(1)
        self.labels = torch.arange(n) % NUM_LABELS
        if kind == "text":
            ids = torch.randint(4, 40, (n, 8), generator=g)
            ids[:, 0] = self.labels + 1  # the first token tells the class
            self.inputs = [{"input_ids": row} for row in ids]
        elif kind == "image":
            x = torch.randn(n, 3, 8, 8, generator=g) * 0.3
            x[:, 0] += self.labels[:, None, None].float() - 1  # the red channel's level tells the class
            self.inputs = [{"pixel_values": row} for row in x]
        else:
            t = torch.arange(400) / 400
            freq = (self.labels + 1).float()[:, None] * 8
            x = torch.sin(2 * torch.pi * freq * t) + 0.1 * torch.randn(n, 400, generator=g)
            self.inputs = [{"input_values": row} for row in x]
        self.labels = self.labels.clone()
        self.labels[list(ignore)] = -100

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, i):
        return {**self.inputs[i], "labels": self.labels[i]}


MODELS = {"image": tiny_timm_vit, "text": tiny_bert, "audio": tiny_wav2vec2}
OSTC = OSTCConfig(method="lsr_os_tc", alpha=0.5, temperature=2.0, correct_prob=0.5)


def args(tmp_path, **kw):
    defaults = dict(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True,
        logging_steps=1, dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    defaults.update(kw)
    return TrainingArguments(**defaults)


@pytest.mark.parametrize("kind", ["image", "text", "audio"])
def test_loss_goes_down_and_parts_are_logged(kind, tmp_path):
    torch.manual_seed(0)
    trainer = OSTCTrainer(
        model=MODELS[kind](),
        args=args(tmp_path, per_device_train_batch_size=8, max_steps=30, learning_rate=1e-2, lr_scheduler_type="constant"),
        ostc=OSTC,
        train_dataset=ToyDataset(kind, 24),
    )
    trainer.train()
    logs = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logs) == 30
    first = sum(r["loss"] for r in logs[:3]) / 3
    last = sum(r["loss"] for r in logs[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    for r in logs:  # one step per log: the logged total is the weighted sum of the logged parts
        expected = 0.5 * r["ce"] + 0.5 * 4.0 * r["kl"]
        assert r["loss"] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def one_sgd_step(model, tmp_path, batch_size, accumulation, trainer_cls, **trainer_kw):
    model = copy.deepcopy(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = trainer_cls(
        model=model,
        args=args(
            tmp_path / f"b{batch_size}", per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
            max_steps=1, optim="sgd", learning_rate=0.5, lr_scheduler_type="constant", weight_decay=0.0,
            max_grad_norm=0.0,
        ),  # fmt: skip
        **trainer_kw,
    )
    trainer.train()
    return {k: model.state_dict()[k] - before[k] for k in before if before[k].is_floating_point()}


@pytest.mark.parametrize("kind", ["text", "image"])  # BERT: num_items_in_batch regime; TimmWrapper: the other
@pytest.mark.parametrize("use_hook", [False, True], ids=["OSTCTrainer", "Trainer+compute_loss_func"])
def test_gradient_accumulation_gives_the_same_update(kind, use_hook, tmp_path):
    torch.manual_seed(0)
    model = MODELS[kind]()
    data = ToyDataset(kind, 8, ignore=[1, 2, 5])  # uneven valid counts per half: a mean of means would differ
    if use_hook:
        kw = dict(trainer_cls=Trainer, compute_loss_func=OSTCLoss(OSTC), train_dataset=data)
    else:
        kw = dict(trainer_cls=OSTCTrainer, ostc=OSTC, train_dataset=data)
    full = one_sgd_step(model, tmp_path, 8, 1, **kw)
    split = one_sgd_step(model, tmp_path, 4, 2, **kw)
    moved = sum(d.norm() ** 2 for d in full.values()).sqrt()
    diff = sum((full[k] - split[k]).norm() ** 2 for k in full).sqrt()
    assert moved > 1e-3
    assert diff < 1e-4 * moved, (float(diff), float(moved))


def test_eval_logs_parts_with_prefix(tmp_path):
    torch.manual_seed(0)
    data = ToyDataset("text", 8)
    trainer = OSTCTrainer(model=tiny_bert(), args=args(tmp_path, max_steps=1), ostc=OSTC, train_dataset=data)
    metrics = trainer.evaluate(data)
    assert {"eval_loss", "eval_ce", "eval_kl"} <= set(metrics)
    assert metrics["eval_loss"] == pytest.approx(0.5 * metrics["eval_ce"] + 2.0 * metrics["eval_kl"], rel=1e-4)
    test_metrics = trainer.evaluate(data, metric_key_prefix="test")
    assert {"test_loss", "test_ce", "test_kl"} <= set(test_metrics)


def test_model_own_loss_is_ignored(tmp_path):
    """The model never sees labels: its own CE is not computed, the loss is OSTCLoss on its logits."""
    torch.manual_seed(0)
    model = tiny_bert()
    data = ToyDataset("text", 6)
    trainer = OSTCTrainer(model=model, args=args(tmp_path, max_steps=1), ostc=OSTC, train_dataset=data)
    batch = {k: torch.stack([data[i][k] for i in range(6)]) for k in ("input_ids", "labels")}
    model.eval()
    loss = trainer.compute_loss(model, dict(batch))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits
        own = model(**batch).loss
    torch.testing.assert_close(loss, OSTCLoss(OSTC)(logits, batch["labels"]))
    assert abs(loss.item() - own.item()) > 1e-3


def test_refuses_label_smoothing_factor(tmp_path):
    with pytest.raises(ValueError, match="label_smoothing_factor must be 0"):
        OSTCTrainer(model=tiny_bert(), args=args(tmp_path, label_smoothing_factor=0.1), ostc=OSTC)


def test_refuses_compute_loss_func_and_misplaced_teacher(tmp_path):
    with pytest.raises(ValueError, match="compute_loss_func"):
        OSTCTrainer(model=tiny_bert(), args=args(tmp_path), ostc=OSTC, compute_loss_func=OSTCLoss(OSTC))
    with pytest.raises(ValueError, match="teacher_model is required"):
        OSTCTrainer(model=tiny_bert(), args=args(tmp_path), ostc=OSTCConfig(method="kd"))
    with pytest.raises(ValueError, match="only used by method='kd'"):
        OSTCTrainer(model=tiny_bert(), args=args(tmp_path), ostc=OSTC, teacher_model=tiny_bert())


def test_checks_correct_prob_against_model_classes(tmp_path):
    with pytest.raises(ValueError, match=r"correct_prob must be in \[1/K, 1\)"):
        OSTCTrainer(model=tiny_bert(), args=args(tmp_path), ostc=OSTCConfig(method="lsr_os_tc", correct_prob=0.2))


def test_kd_uses_frozen_teacher(tmp_path):
    torch.manual_seed(0)
    student = tiny_bert()
    teacher = copy.deepcopy(student)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer = OSTCTrainer(
        model=student,
        args=args(tmp_path, per_device_train_batch_size=6, max_steps=2, learning_rate=1e-2),
        ostc=OSTCConfig(method="kd", alpha=0.5, temperature=2.0),  # CE moves the student off the teacher
        teacher_model=teacher,
        train_dataset=ToyDataset("text", 12),
    )
    trainer.train()
    logs = [r for r in trainer.state.log_history if "loss" in r]
    assert logs[0]["kl"] == pytest.approx(0.0, abs=1e-7)  # student == teacher at the first step
    assert logs[1]["kl"] > 1e-7  # the student moved, the teacher did not
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, teacher_before[k], rtol=0, atol=0)


def test_kd_teacher_class_count_must_match(tmp_path):
    other = tiny_bert()
    other.config.num_labels = 5
    with pytest.raises(ValueError, match="teacher_model has 5 classes but the model has 3"):
        OSTCTrainer(model=tiny_bert(), args=args(tmp_path), ostc=OSTCConfig(method="kd"), teacher_model=other)


@pytest.mark.parametrize("bad", [NUM_LABELS, -3])
def test_out_of_range_label_stops_training_in_the_collator(bad, tmp_path):
    """The label check runs on the CPU batch (the collator), so the loss itself skips its per-call device sync."""
    data = ToyDataset("text", 8)
    data.labels[5] = bad
    trainer = OSTCTrainer(model=tiny_bert(), args=args(tmp_path, max_steps=2, per_device_train_batch_size=8),
                          ostc=OSTC, train_dataset=data)  # fmt: skip
    assert isinstance(trainer.data_collator, LabelCheckingCollator) and not trainer.compute_loss_func.check_labels
    with pytest.raises(ValueError, match=rf"labels must be in \[0, {NUM_LABELS}\) or -100 \(ignored\), got \[{bad}\]"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_label_checking_collator_passes_batches_through():
    collate = LabelCheckingCollator(lambda f: {"labels": torch.tensor(f), "x": torch.ones(len(f))}, num_classes=3)
    batch = collate([0, 2, -100, 1])
    assert batch["labels"].tolist() == [0, 2, -100, 1] and batch["x"].shape == (4,)
    assert collate([])["labels"].numel() == 0
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) or -100 \(ignored\), got \[3\]"):
        collate([0, 3])
    assert LabelCheckingCollator(lambda f: f, 3)([5, 6]) == [5, 6]  # no mapping, no labels: nothing to check


def test_flop_estimate_equals_trainers_with_the_count_taken_once(tmp_path, monkeypatch):
    model = tiny_bert()
    trainer = OSTCTrainer(model=model, args=args(tmp_path, max_steps=1), ostc=OSTC, train_dataset=ToyDataset("text", 8))
    inputs = {"input_ids": torch.ones(4, 8, dtype=torch.long), "labels": torch.zeros(4, dtype=torch.long)}
    expected = Trainer.floating_point_ops(trainer, inputs)
    assert expected > 0 and trainer.floating_point_ops(inputs) == expected
    calls = []
    monkeypatch.setattr(model, "num_parameters", lambda **kw: calls.append(kw) or 0)
    assert trainer.floating_point_ops(inputs) == expected and not calls  # cached: no walk over the modules
    assert trainer.floating_point_ops({"pixel_values": torch.ones(1)}) == 0  # no main input: no estimate


@pytest.mark.parametrize("method", ["ce", "lsr_os_tc"])
def test_eval_parts_are_per_sample_means_over_uneven_batches(method, tmp_path):
    """60 samples at batch 32 (32 + 28): eval_ce and eval_kl weigh each batch by its sample count, like Trainer's
    eval_loss, so for method ce eval_ce equals eval_loss, and for any method eval_loss = (1−α)·eval_ce + α·w·eval_kl
    (a mean of the two batch means would differ)."""
    torch.manual_seed(0)
    ostc = OSTCConfig(method=method, alpha=0.5, temperature=2.0, correct_prob=0.5)
    trainer = OSTCTrainer(
        model=tiny_bert(), ostc=ostc, train_dataset=ToyDataset("text", 24),
        args=args(tmp_path, max_steps=20, learning_rate=1e-2, per_device_train_batch_size=8,
                  per_device_eval_batch_size=32),
    )  # fmt: skip
    trainer.train()
    data = ToyDataset("text", 60)
    data.labels[32:] = (data.labels[32:] + 1) % NUM_LABELS  # the second batch is wrong: its CE is much larger
    metrics = trainer.evaluate(data)
    loss_fn = OSTCLoss(ostc)
    with torch.no_grad():
        parts = []
        for start in range(0, 60, 32):
            items = [data[i] for i in range(start, min(start + 32, 60))]
            ids = torch.stack([item["input_ids"] for item in items])
            labels = torch.stack([item["labels"] for item in items])
            parts.append((len(items), loss_fn.components(trainer.model(input_ids=ids).logits, labels)))
    assert [n for n, _ in parts] == [32, 28]
    per_sample_ce = sum(n * p["ce"].item() for n, p in parts) / 60
    mean_of_means = sum(p["ce"].item() for _, p in parts) / 2
    assert metrics["eval_ce"] == pytest.approx(per_sample_ce, rel=1e-5)
    assert abs(per_sample_ce - mean_of_means) > 1e-4  # the test can tell the two apart
    if method == "ce":
        assert metrics["eval_ce"] == pytest.approx(metrics["eval_loss"], rel=1e-5)
    else:
        expected = 0.5 * metrics["eval_ce"] + 0.5 * 4.0 * metrics["eval_kl"]
        assert metrics["eval_loss"] == pytest.approx(expected, rel=1e-5)


def test_compute_loss_func_hook_cannot_see_label_smoothing_factor(tmp_path):
    """Documented limitation (docs/REUSE.md): with Trainer(compute_loss_func=OSTCLoss(cfg)), Trainer ignores
    label_smoothing_factor (it applies it only in the loss the hook replaces): the loss is OSTCLoss's, unsmoothed."""
    torch.manual_seed(0)
    data = ToyDataset("text", 8)
    model = tiny_bert()
    losses = {}
    for factor in (0.0, 0.3):
        trainer = Trainer(
            model=copy.deepcopy(model), args=args(tmp_path / str(factor), max_steps=1, label_smoothing_factor=factor),
            compute_loss_func=OSTCLoss(OSTC), train_dataset=data,
        )  # fmt: skip
        losses[factor] = trainer.evaluate(data)["eval_loss"]
    assert losses[0.3] == pytest.approx(losses[0.0], rel=1e-6)
