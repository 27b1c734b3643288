"""The ``cifar_*`` timm backbones (``import lsr_hf.models.cifar`` registers them with timm).

They are defined in :mod:`lsr_hf.models.modeling_lsr_cifar`, a file that imports only torch, timm and transformers,
so that lsr-hf can ship it with a trained model (``trust_remote_code``); this module keeps the older import path.
"""

from lsr_hf.models.modeling_lsr_cifar import *  # noqa: F401,F403
from lsr_hf.models.modeling_lsr_cifar import CIFAR100_MEAN, CIFAR100_STD, __all__  # noqa: F401
