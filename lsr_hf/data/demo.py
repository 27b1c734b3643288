"""The ``demo`` dataset: real images that need no network.

scikit-learn bundles the UCI handwritten digits (1,797 grey 8×8 images, values 0..16, 10 classes). They are
scaled to 0..255, upscaled ×4 (nearest neighbour) to 32×32, repeated over 3 channels and split once, stratified
with a fixed seed, 70 / 10 / 20 into train / validation / test. The result has CIFAR-10's columns (``img`` as a
``datasets.Image``, ``label`` as a ``ClassLabel``) so it goes through the same loading code as the Hub datasets,
and a CPU trains a small net on it in minutes.
"""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

from lsr_hf.data.specs import get_spec

DEMO_SEED = 0  # fixed: the demo split is the same for every run, whatever data.split_seed says
DEMO_FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}
UPSCALE = 4  # 8x8 -> 32x32


def demo_images() -> tuple[np.ndarray, np.ndarray]:
    """All digits as ``(images uint8 (N, 32, 32, 3), labels int64 (N,))``, in scikit-learn's order."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)  # (N, 8, 8)
    big = grey.repeat(UPSCALE, axis=1).repeat(UPSCALE, axis=2)  # (N, 32, 32)
    return np.repeat(big[..., None], 3, axis=3), digits.target.astype(np.int64)


def demo_split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Stratified train/validation/test indices (sorted) for ``labels``, with the fixed ``DEMO_SEED``."""
    from sklearn.model_selection import train_test_split

    n = len(labels)
    n_test = round(DEMO_FRACTIONS["test"] * n)
    n_val = round(DEMO_FRACTIONS["validation"] * n)
    index = np.arange(n)
    rest, test = train_test_split(index, test_size=n_test, stratify=labels, random_state=DEMO_SEED)
    train, val = train_test_split(rest, test_size=n_val, stratify=labels[rest], random_state=DEMO_SEED)
    return {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}


def load_demo() -> DatasetDict:
    """The demo dataset as a ``DatasetDict`` with ``train``/``validation``/``test`` splits (1258/180/359)."""
    spec = get_spec("demo")
    images, labels = demo_images()
    features = Features({spec.input_column: Image(), spec.label_column: ClassLabel(names=list(spec.class_names))})
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {spec.input_column: list(images[idx]), spec.label_column: labels[idx].tolist()}, features=features
            )
            for split, idx in demo_split_indices(labels).items()
        }
    )
