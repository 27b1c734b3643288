"""``AudioCNNFeatureExtractor`` on lsr-hf's side: registered with ``AutoFeatureExtractor`` for ``AudioCNNConfig``, so
that ``pipeline("audio-classification", model=folder)`` and ``AutoFeatureExtractor.from_pretrained(folder)`` load it
from ``preprocessor_config.json`` without remote code once ``lsr_hf`` is imported.

The class is defined in :mod:`lsr_hf.models.feature_extraction_lsr_audio`, the self-contained file shipped with
every trained audio model (see its docstring).
"""

from transformers import AutoFeatureExtractor

from lsr_hf.models.feature_extraction_lsr_audio import AudioCNNFeatureExtractor
from lsr_hf.models.modeling_lsr_audio import AudioCNNConfig

__all__ = ["AudioCNNFeatureExtractor"]

AutoFeatureExtractor.register(AudioCNNConfig, AudioCNNFeatureExtractor, exist_ok=True)
