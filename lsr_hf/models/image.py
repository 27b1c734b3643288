"""Image classifiers: any timm model as a ``transformers`` model (``TimmWrapperForImageClassification``)."""

from __future__ import annotations

import timm
import torch
from transformers import PreTrainedModel, TimmWrapperConfig, TimmWrapperForImageClassification
from transformers.core_model_loading import PrefixChange

from lsr_hf.models import modeling_lsr_cifar
from lsr_hf.models.config import ModelConfig
from lsr_hf.models.modeling_lsr_cifar import TimmWrapperForImageClassification as CifarTimmWrapper


def check_timm_name(name: str, pretrained: bool) -> None:
    """``ValueError`` if timm does not know ``name`` or, with ``pretrained``, has no weights for it."""
    if not timm.is_model(name):
        raise ValueError(
            f"name must be a timm model name (see timm.list_models(); the cifar_* models need "
            f"`import lsr_hf.models`), got {name!r}"
        )
    if pretrained and not timm.is_model_pretrained(name):
        raise ValueError(f"pretrained is true but timm has no pretrained weights for {name!r}; set it to false")


def label_maps(num_classes: int, id2label: dict[int, str] | None) -> tuple[dict[int, str], dict[str, int]]:
    """``id2label`` (``LABEL_i`` names when not given) and its inverse, checked against ``num_classes``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if id2label is None:
        id2label = {i: f"LABEL_{i}" for i in range(num_classes)}
    id2label = {int(i): str(label) for i, label in id2label.items()}
    if sorted(id2label) != list(range(num_classes)):
        raise ValueError(f"id2label must map exactly the class ids 0..{num_classes - 1}, got keys {sorted(id2label)}")
    label2id = {label: i for i, label in id2label.items()}
    if len(label2id) != num_classes:
        raise ValueError(f"id2label must hold distinct class names, got {list(id2label.values())}")
    return id2label, label2id


def build_image_model(
    cfg: ModelConfig, num_classes: int, id2label: dict[int, str] | None = None
) -> PreTrainedModel:
    """A ``TimmWrapperForImageClassification`` around ``timm.create_model(cfg.name, ...)``.

    The wrapper's own constructor re-initialises a timm net to N(0, 0.02) (and un-zeroes ResNet's last
    BatchNorm of each block), so the net is built by timm, with timm's init or, with ``cfg.pretrained``, timm's
    pretrained weights (Hub download, new ``num_classes`` head), and its state is loaded into the wrapper.

    Input ``pixel_values`` (B, 3, H, W) float, output ``.logits`` (B, num_classes). ``save_pretrained`` writes
    ``model.safetensors`` and a ``config.json`` (``architecture``, ``model_args``, ``label_names``, timm's
    ``pretrained_cfg``), with timm's own weight names (:func:`timm_native_weight_names`), so that
    ``AutoModelForImageClassification.from_pretrained`` and ``timm.create_model("local-dir:...", pretrained=True)``
    both reload it; for the ``cifar_*`` models the class is :func:`wrapper_class`'s, which ships its code. With ``cfg.channels_last`` the 4-D weights are stored channels_last
    (the convolutions then run in cuDNN's NHWC layout whatever the input's layout).
    """
    check_timm_name(cfg.name, cfg.pretrained)
    id2label, label2id = label_maps(num_classes, id2label)
    model_args = dict(cfg.timm_kwargs)
    if cfg.drop_rate:
        model_args["drop_rate"] = cfg.drop_rate
    net = timm.create_model(cfg.name, pretrained=cfg.pretrained, num_classes=num_classes, **model_args)
    config = TimmWrapperConfig(
        architecture=cfg.name,
        model_args=model_args,  # {} rather than null: timm.create_model("hf-hub:...") reads it with .get
        id2label=id2label,
        label2id=label2id,
        # lets TimmWrapperImageProcessor.from_pretrained(dir) work; lsr_hf.job.processing.attach_preprocessing replaces
        # timm's defaults (ImageNet size, mean/std, weights' source) with the training data's
        pretrained_cfg=dict(net.pretrained_cfg),
    )
    model = wrapper_class(cfg.name)(config)
    timm_native_weight_names(model)
    model.timm_model.load_state_dict(net.state_dict(), strict=True)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def wrapper_class(name: str) -> type[TimmWrapperForImageClassification]:
    """The transformers class for timm model ``name``: ``modeling_lsr_cifar.TimmWrapperForImageClassification`` (a
    subclass of transformers' class of that name) for the models of
    ``lsr_hf.models.modeling_lsr_cifar`` (its save copies that file into the folder and names it in ``auto_map``,
    so that the folder loads without lsr-hf with ``trust_remote_code=True``), else transformers' own
    ``TimmWrapperForImageClassification`` (no remote code)."""
    module = timm.models.model_entrypoint(name).__module__ if timm.is_model(name) else ""
    return CifarTimmWrapper if module == modeling_lsr_cifar.__name__ else (
        TimmWrapperForImageClassification
    )


def timm_native_weight_names(model: TimmWrapperForImageClassification) -> None:
    """Makes ``model.save_pretrained`` write the timm net's own state-dict names (``conv1.weight``, not
    ``timm_model.conv1.weight``), as ``timm.models.push_to_hf_hub`` does: transformers then saves with the reverse
    of the prefix it adds when it loads a timm checkpoint (its ``timm_wrapper`` conversion mapping), the same as for
    a model it loaded from a timm repo. transformers and timm both load such files."""
    model._weight_conversions = [PrefixChange(prefix_to_add=model.base_model_prefix)]
