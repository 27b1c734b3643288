"""CIFAR-resolution backbones registered with timm, and the transformers class that wraps them.

This file imports only torch, timm and transformers: lsr-hf ships it in every model folder whose network is one of
these (``auto_map`` in ``config.json``), so the folder loads without lsr-hf, with ``trust_remote_code=True`` in
transformers or, in timm, once the file is imported from the folder (``sys.path``). Importing it (or
``lsr_hf.models``) registers the models: ``timm.create_model("cifar_resnet18", num_classes=100)`` then works like
any timm model. All of them take a 3x3 stride-1 stem and no stem max-pool, so a 32x32 image reaches the last stage at
4x4 (8x8 for GoogLeNet and ResNeXt-29), as in the CIFAR versions used by Tf-KD and kuangliu/pytorch-cifar.

==========================  ===================================================================================
``cifar_resnet18``          timm ``ResNet`` (BasicBlock, 2-2-2-2)
``cifar_resnet50``          timm ``ResNet`` (Bottleneck, 3-4-6-3)
``cifar_resnext29_8x64d``   timm ``ResNet`` (Bottleneck, cardinality 8, base width 64, 3 stages of 3 blocks)
``cifar_mobilenetv2``       timm ``EfficientNet`` builder with MobileNetV2 blocks, stem and 2nd stage at stride 1
``cifar_densenet121``       timm ``DenseNet`` (growth 32, 6-12-24-16)
``cifar_shufflenetv2``      ShuffleNetV2 1.0x written here (timm has none)
``cifar_googlenet``         GoogLeNet (Inception v1 with BatchNorm, 5x5 as two 3x3) written here
==========================  ===================================================================================

The timm-based ones keep timm's weight init (e.g. ResNet's zero-initialised last BatchNorm of every block);
only the replaced stem conv is initialised here, with the same rule timm uses for that network. Each model
has a pretrained cfg (input 3x32x32, CIFAR-100 mean/std, first conv, classifier) and no pretrained weights.
Parameter counts are in docs/MODELS.md.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from timm.layers import ConvNormAct, create_classifier, get_device_dtype
from timm.models import (
    build_model_with_cfg,
    generate_default_cfgs,
    is_model,
    model_entrypoint,
    register_model,
)
from timm.models._efficientnet_builder import decode_arch_def, resolve_act_layer, resolve_bn_args
from timm.models._manipulate import checkpoint_seq
from timm.models.densenet import DenseNet
from timm.models.efficientnet import EfficientNet
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn
from transformers import TimmWrapperForImageClassification as _TimmWrapperForImageClassification

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CifarDenseNet",
    "CifarEfficientNet",
    "CifarGoogLeNet",
    "CifarResNet",
    "CifarShuffleNetV2",
    "TimmWrapperForImageClassification",
]

CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def _scale_reductions(feature_info: list[dict[str, Any]], factor: int) -> None:
    """The CIFAR stem removes ``factor`` of the ImageNet stem's downsampling: fix the feature strides."""
    for info in feature_info:
        info["reduction"] = max(1, info["reduction"] // factor)


# --------------------------------------------------------------------------------------------------- timm-based


class CifarResNet(ResNet):
    """timm ``ResNet`` with a 3x3 stride-1 stem conv and no max-pool. ``channels`` of length 3 gives a
    3-stage net (ResNeXt-29); its unused ``layer4`` is an empty ``nn.Sequential``."""

    def __init__(self, *, in_chans: int = 3, device=None, dtype=None, **kwargs: Any) -> None:
        super().__init__(in_chans=in_chans, device=device, dtype=dtype, **kwargs)
        stem_chs = self.bn1.num_features
        self.conv1 = nn.Conv2d(in_chans, stem_chs, 3, padding=1, bias=False, device=device, dtype=dtype)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")  # ResNet.init_weights' rule
        self.maxpool = nn.Identity()
        if not hasattr(self, "layer4"):
            self.layer4 = nn.Sequential()  # ResNet.forward_features always calls layer1..layer4
        _scale_reductions(self.feature_info, 4)


class CifarEfficientNet(EfficientNet):
    """timm ``EfficientNet`` whose stem conv has stride 1 (same kernel, padding and init)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv_stem.stride = (1, 1)
        # the block strides come from the arch def; the builder counted the stem as stride 2
        _scale_reductions(self.feature_info, 2)


class CifarDenseNet(DenseNet):
    """timm ``DenseNet`` with a 3x3 stride-1 stem conv and no stem max-pool."""

    def __init__(self, *, in_chans: int = 3, growth_rate: int = 32, device=None, dtype=None, **kwargs: Any) -> None:
        super().__init__(in_chans=in_chans, growth_rate=growth_rate, device=device, dtype=dtype, **kwargs)
        conv0 = nn.Conv2d(in_chans, 2 * growth_rate, 3, padding=1, bias=False, device=device, dtype=dtype)
        nn.init.kaiming_normal_(conv0.weight)  # DenseNet's own init rule for convs
        self.features.conv0 = conv0
        self.features.pool0 = nn.Identity()
        _scale_reductions(self.feature_info, 4)


# MobileNetV2 as in timm's _gen_mobilenet_v2, but the 24-channel stage keeps stride 1 (total stride 8, not 32)
_MOBILENETV2_CIFAR_ARCH = [
    ["ds_r1_k3_s1_c16"],
    ["ir_r2_k3_s1_e6_c24"],
    ["ir_r3_k3_s2_e6_c32"],
    ["ir_r4_k3_s2_e6_c64"],
    ["ir_r3_k3_s1_e6_c96"],
    ["ir_r3_k3_s2_e6_c160"],
    ["ir_r1_k3_s1_e6_c320"],
]


# ------------------------------------------------------------------------------------------- written here


def _channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


def _init_conv_net(model: nn.Module) -> None:
    """Init of the nets written here, timm ResNet's rule: Kaiming (fan_out) convs, BatchNorm 1/0, default Linear."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class _ClassifierMixin:
    """The timm classifier API shared by the nets written here (``fc`` after ``global_pool``)."""

    num_classes: int
    num_features: int
    drop_rate: float
    grad_checkpointing: bool
    global_pool: nn.Module
    fc: nn.Module

    def _build_stem(self, in_chans: int, stem_chs: int, num_classes: int, drop_rate: float) -> None:
        """The 3x3 stride-1 stem and the attributes timm expects, before the stages are added."""
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.stem = ConvNormAct(in_chans, stem_chs, 3)
        self.feature_info = [dict(num_chs=stem_chs, reduction=1, module="stem")]

    def _build_head(self, num_features: int, global_pool: str) -> None:
        """Global pooling + ``fc`` after the stages, then the weight init of the whole net."""
        self.num_features = num_features
        self.global_pool, self.fc = create_classifier(num_features, self.num_classes, pool_type=global_pool)
        self.head_hidden_size = num_features * self.global_pool.feat_mult()
        _init_conv_net(self)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> str | nn.Module:
        return "fc" if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        pool_type = self.global_pool.pool_type if global_pool is None else global_pool
        dd = get_device_dtype(self)
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=pool_type, **dd)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def _run_stages(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.stages, x)
        return self.stages(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class _ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit. Stride 1: split the channels in halves, transform one, concatenate, shuffle.
    Stride 2: a depthwise-downsampling branch on the whole input beside the main branch, concatenate, shuffle."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        if stride == 1 and in_chs != out_chs:
            raise ValueError(f"a stride-1 ShuffleNetV2 unit keeps its width, got {in_chs} -> {out_chs}")
        branch_chs = out_chs // 2
        self.stride = stride
        if stride == 1:
            self.shortcut = nn.Identity()
            main_in = in_chs // 2
        else:
            self.shortcut = nn.Sequential(
                ConvNormAct(in_chs, in_chs, 3, stride=stride, groups=in_chs, apply_act=False),
                ConvNormAct(in_chs, branch_chs, 1),
            )
            main_in = in_chs
        self.main = nn.Sequential(
            ConvNormAct(main_in, branch_chs, 1),
            ConvNormAct(branch_chs, branch_chs, 3, stride=stride, groups=branch_chs, apply_act=False),
            ConvNormAct(branch_chs, branch_chs, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)
        else:
            kept = x
        return _channel_shuffle(torch.cat([self.shortcut(kept), self.main(x)], dim=1), 2)


class CifarShuffleNetV2(_ClassifierMixin, nn.Module):
    """ShuffleNetV2 (Ma et al., 2018) for 32x32 inputs: 3x3 stride-1 stem without max-pool, then three stages
    that each open with a stride-2 unit (32 -> 16 -> 8 -> 4), a 1x1 head conv, global pooling and ``fc``."""

    def __init__(
        self,
        stage_chs: tuple[int, ...] = (116, 232, 464),
        stage_depths: tuple[int, ...] = (4, 8, 4),
        stem_chs: int = 24,
        num_features: int = 1024,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self._build_stem(in_chans, stem_chs, num_classes, drop_rate)
        stages, in_chs, reduction = [], stem_chs, 1
        for idx, (chs, depth) in enumerate(zip(stage_chs, stage_depths)):
            units = [_ShuffleUnit(in_chs, chs, 2)] + [_ShuffleUnit(chs, chs, 1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*units))
            in_chs, reduction = chs, reduction * 2
            self.feature_info.append(dict(num_chs=chs, reduction=reduction, module=f"stages.{idx}"))
        self.stages = nn.Sequential(*stages)
        self.conv_head = ConvNormAct(in_chs, num_features, 1)
        self.feature_info.append(dict(num_chs=num_features, reduction=reduction, module="conv_head"))
        self._build_head(num_features, global_pool)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_head(self._run_stages(self.stem(x)))


class _Inception(nn.Module):
    """Inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 (the 5x5 factorised) | 3x3 max-pool -> 1x1."""

    def __init__(self, in_chs: int, c1: int, c3_red: int, c3: int, c5_red: int, c5: int, pool_chs: int) -> None:
        super().__init__()
        self.branch1 = ConvNormAct(in_chs, c1, 1)
        self.branch3 = nn.Sequential(ConvNormAct(in_chs, c3_red, 1), ConvNormAct(c3_red, c3, 3))
        self.branch5 = nn.Sequential(
            ConvNormAct(in_chs, c5_red, 1), ConvNormAct(c5_red, c5, 3), ConvNormAct(c5, c5, 3)
        )
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvNormAct(in_chs, pool_chs, 1))
        self.out_chs = c1 + c3 + c5 + pool_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per Inception module, GoogLeNet's 3a-3b / 4a-4e / 5a-5b
_GOOGLENET_STAGES = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    (
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)


class CifarGoogLeNet(_ClassifierMixin, nn.Module):
    """GoogLeNet (Szegedy et al., 2015) with BatchNorm for 32x32 inputs: a 3x3 stride-1 stem conv to 192
    channels, Inception stages 3/4/5 with a 3x3 stride-2 max-pool before stages 4 and 5 (32 -> 16 -> 8),
    global pooling and ``fc``; no auxiliary heads."""

    def __init__(
        self,
        stem_chs: int = 192,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self._build_stem(in_chans, stem_chs, num_classes, drop_rate)
        stages, in_chs, reduction = [], stem_chs, 1
        for idx, stage_cfg in enumerate(_GOOGLENET_STAGES):
            layers: list[nn.Module] = []
            if idx > 0:
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))
                reduction *= 2
            for module_cfg in stage_cfg:
                layers.append(_Inception(in_chs, *module_cfg))
                in_chs = layers[-1].out_chs
            stages.append(nn.Sequential(*layers))
            self.feature_info.append(dict(num_chs=in_chs, reduction=reduction, module=f"stages.{idx}"))
        self.stages = nn.Sequential(*stages)
        self._build_head(in_chs, global_pool)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run_stages(self.stem(x))


# ---------------------------------------------------------------------------------------------- registration


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 100,
        "input_size": (3, 32, 32),
        "pool_size": (4, 4),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": CIFAR100_MEAN,
        "std": CIFAR100_STD,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "apache-2.0",
        **kwargs,
    }


# timm's register_model reads this module-level name
default_cfgs = generate_default_cfgs(
    {
        "cifar_resnet18": _cfg(),
        "cifar_resnet50": _cfg(),
        "cifar_resnext29_8x64d": _cfg(pool_size=(8, 8)),
        "cifar_mobilenetv2": _cfg(first_conv="conv_stem", classifier="classifier"),
        "cifar_densenet121": _cfg(first_conv="features.conv0", classifier="classifier"),
        "cifar_shufflenetv2": _cfg(first_conv="stem.conv"),
        "cifar_googlenet": _cfg(pool_size=(8, 8), first_conv="stem.conv"),
    }
)


def _register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """timm's ``register_model``, except that re-running this module (``importlib.reload``, or the file loaded
    under a second name) keeps the existing registration instead of overwriting it with a warning."""
    name = fn.__name__
    if is_model(name) and model_entrypoint(name).__module__.rsplit(".", 1)[-1] == fn.__module__.rsplit(".", 1)[-1]:
        return fn
    return register_model(fn)


def _build(
    model_cls: type[nn.Module], variant: str, pretrained: bool, feature_cfg: dict[str, Any], **kwargs: Any
) -> nn.Module:
    return build_model_with_cfg(model_cls, variant, pretrained, feature_cfg=feature_cfg, **kwargs)


# ``features_only=True``: ResNet stages are direct children, the other nets keep theirs in nn.Sequential
# containers. Four feature taps (not timm's usual five) where the stem and a stride-1 stage share a stride.
_RESNET_FEATURES: dict[str, Any] = {}
_SEQUENTIAL_FEATURES: dict[str, Any] = dict(flatten_sequential=True)
_SEQUENTIAL_FOUR_TAPS: dict[str, Any] = dict(flatten_sequential=True, out_indices=(0, 1, 2, 3))


@_register
def cifar_resnet18(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-18 for 32x32 inputs (11.2M parameters for 100 classes)."""
    model_args = dict(block=BasicBlock, layers=(2, 2, 2, 2))
    return _build(CifarResNet, "cifar_resnet18", pretrained, _RESNET_FEATURES, **dict(model_args, **kwargs))


@_register
def cifar_resnet50(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-50 for 32x32 inputs (23.7M parameters for 100 classes)."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3))
    return _build(CifarResNet, "cifar_resnet50", pretrained, _RESNET_FEATURES, **dict(model_args, **kwargs))


@_register
def cifar_resnext29_8x64d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNeXt-29 8x64d (Xie et al., CIFAR version: 3 stages of 3 bottlenecks, 34.5M parameters for 100 classes)."""
    model_args = dict(block=Bottleneck, layers=(3, 3, 3), channels=(64, 128, 256), cardinality=8, base_width=64)
    feature_cfg = dict(out_indices=(0, 1, 2, 3))
    return _build(CifarResNet, "cifar_resnext29_8x64d", pretrained, feature_cfg, **dict(model_args, **kwargs))


@_register
def cifar_mobilenetv2(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """MobileNetV2 1.0 for 32x32 inputs (stride-1 stem and 24-channel stage; 2.4M parameters for 100 classes)."""
    model_args = dict(
        block_args=decode_arch_def(_MOBILENETV2_CIFAR_ARCH),
        num_features=1280,
        stem_size=32,
        norm_layer=kwargs.pop("norm_layer", None) or partial(nn.BatchNorm2d, **resolve_bn_args(kwargs)),
        act_layer=resolve_act_layer(kwargs, "relu6"),
    )
    return _build(
        CifarEfficientNet, "cifar_mobilenetv2", pretrained, _SEQUENTIAL_FOUR_TAPS, **dict(model_args, **kwargs)
    )


@_register
def cifar_densenet121(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """DenseNet-121 (growth 32) for 32x32 inputs (7.0M parameters for 100 classes)."""
    model_args = dict(growth_rate=32, block_config=(6, 12, 24, 16))
    return _build(CifarDenseNet, "cifar_densenet121", pretrained, _SEQUENTIAL_FEATURES, **dict(model_args, **kwargs))


@_register
def cifar_shufflenetv2(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ShuffleNetV2 1.0x for 32x32 inputs (1.36M parameters for 100 classes)."""
    return _build(CifarShuffleNetV2, "cifar_shufflenetv2", pretrained, _SEQUENTIAL_FEATURES, **kwargs)


@_register
def cifar_googlenet(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """GoogLeNet with BatchNorm for 32x32 inputs (6.2M parameters for 100 classes)."""
    return _build(CifarGoogLeNet, "cifar_googlenet", pretrained, _SEQUENTIAL_FOUR_TAPS, **kwargs)


# ------------------------------------------------------------------------------------------------ transformers


class TimmWrapperForImageClassification(_TimmWrapperForImageClassification):
    """transformers' ``TimmWrapperForImageClassification`` for a timm net of this file (``config.architecture``
    ``cifar_*``): the same model, config (``TimmWrapperConfig``), weights and image processor, and the same name (the
    one ``pipeline("image-classification")`` expects); only defined here so that importing this file (what
    ``trust_remote_code=True`` does from ``auto_map``) registers the nets with timm first. Saving it copies this file
    next to ``config.json`` and names it in ``auto_map``."""


TimmWrapperForImageClassification.register_for_auto_class("AutoModelForImageClassification")
