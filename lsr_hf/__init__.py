"""lsr-hf: LSR-OS-TC (label smoothing as teacher-free distillation) for HuggingFace Trainer and timm."""

from lsr_hf.losses import OSTCConfig, OSTCLoss

__all__ = ["OSTCConfig", "OSTCLoss", "OSTCTrainer"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # transformers is heavy to import: load the trainer only when asked for
    if name == "OSTCTrainer":
        from lsr_hf.trainer import OSTCTrainer

        return OSTCTrainer
    raise AttributeError(f"module 'lsr_hf' has no attribute {name!r}")
