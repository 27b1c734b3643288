"""Datasets for lsr-hf: specs (Hub id, columns, classes), loading, decoding once, batched augmentation.

``prepare_data(DataConfig(...))`` is the entry point; see DESIGN.md §4 for the datasets.
"""

from lsr_hf.data.config import DataConfig
from lsr_hf.data.prepare import PreparedData, prepare_data
from lsr_hf.data.specs import SPECS, DatasetSpec, get_spec

__all__ = ["SPECS", "DataConfig", "DatasetSpec", "PreparedData", "get_spec", "prepare_data"]
