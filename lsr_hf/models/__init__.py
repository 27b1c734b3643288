"""Networks: timm-registered CIFAR backbones, timm models wrapped for transformers, and the audio classifier.

Importing this package registers the ``cifar_*`` models with timm and ``lsr_audio_cnn`` with transformers'
``AutoConfig`` / ``AutoModelForAudioClassification`` / ``AutoFeatureExtractor`` (all safe to repeat).
"""

from lsr_hf.models import cifar  # noqa: F401  (registers the cifar_* models with timm)
from lsr_hf.models.audio import AudioCNNConfig, AudioCNNForAudioClassification, build_audio_model
from lsr_hf.models.config import ModelConfig
from lsr_hf.models.feature_extraction_audio import AudioCNNFeatureExtractor
from lsr_hf.models.image import build_image_model

__all__ = [
    "AudioCNNConfig",
    "AudioCNNFeatureExtractor",
    "AudioCNNForAudioClassification",
    "ModelConfig",
    "build_audio_model",
    "build_image_model",
]
