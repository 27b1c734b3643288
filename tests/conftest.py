"""Test-wide settings: no network, a throw-away HF cache, few threads (CI has 2 cores)."""

import os
import tempfile

_HF_HOME = tempfile.mkdtemp(prefix="lsr_hf_test_hf_home_")
os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_HOME=_HF_HOME,
    HF_HUB_DISABLE_TELEMETRY="1",
    TOKENIZERS_PARALLELISM="false",
    WANDB_DISABLED="true",
)
os.environ.pop("HF_TOKEN", None)
