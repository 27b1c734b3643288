"""What the package knows about each dataset: Hub id, splits, columns, classes, statistics.

Dataset ids and column names live here and nowhere else (recipes name a dataset by its key in ``SPECS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

MODALITIES = ("image", "audio")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset as published on the HuggingFace Hub (or bundled, for ``demo``).

    ``splits`` are the split names the Hub copy has; a missing ``validation`` (or ``test``) split is carved
    from ``train`` by the loader. ``mean``/``std`` (per RGB channel, on the [0, 1] scale, training split) are
    for images; ``sample_rate`` (Hz) is the native rate of the audio files.
    """

    name: str
    modality: str
    hub_id: str | None
    input_column: str
    label_column: str
    class_names: tuple[str, ...]
    splits: tuple[str, ...]
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    sample_rate: int | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must be >= 2 distinct names, got {self.class_names!r}")
        if "train" not in self.splits:
            raise ValueError(f"splits must include 'train', got {self.splits!r}")
        if self.modality == "image":
            for name in ("mean", "std"):
                value = getattr(self, name)
                if value is None or len(value) != 3:
                    raise ValueError(f"{name} must be 3 per-channel values for an image dataset, got {value!r}")
            if min(self.std) <= 0:
                raise ValueError(f"std must be > 0, got {self.std!r}")
        elif self.sample_rate is None or self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0 for an audio dataset, got {self.sample_rate!r}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# CIFAR-100 fine labels, in the order of the dataset's meta file (alphabetical), as on the Hub
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

# the demo's statistics are those of its training split (tests recompute them from the data)
DEMO_MEAN = (0.3053, 0.3053, 0.3053)
DEMO_STD = (0.3759, 0.3759, 0.3759)

SPECS: MappingProxyType[str, DatasetSpec] = MappingProxyType(
    {
        "cifar10": DatasetSpec(
            name="cifar10",
            modality="image",
            hub_id="uoft-cs/cifar10",
            input_column="img",
            label_column="label",
            class_names=CIFAR10_CLASSES,
            splits=("train", "test"),
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
        ),
        "cifar100": DatasetSpec(
            name="cifar100",
            modality="image",
            hub_id="uoft-cs/cifar100",
            input_column="img",
            label_column="fine_label",
            class_names=CIFAR100_CLASSES,
            splits=("train", "test"),
            mean=(0.5071, 0.4865, 0.4409),
            std=(0.2673, 0.2564, 0.2762),
        ),
        "cinic10": DatasetSpec(
            name="cinic10",
            modality="image",
            hub_id="flwrlabs/cinic10",
            input_column="image",
            label_column="label",
            class_names=CIFAR10_CLASSES,
            splits=("train", "validation", "test"),
            mean=(0.4789, 0.4723, 0.4305),
            std=(0.2421, 0.2383, 0.2587),
        ),
        "gtzan": DatasetSpec(
            name="gtzan",
            modality="audio",
            hub_id="confit/gtzan-parquet",
            input_column="audio",
            label_column="label",
            class_names=GTZAN_GENRES,
            splits=("train", "validation", "test"),
            sample_rate=22050,
        ),
        "demo": DatasetSpec(
            name="demo",
            modality="image",
            hub_id=None,  # built from scikit-learn's bundled digits by lsr_hf.data.demo
            input_column="img",
            label_column="label",
            class_names=tuple(str(d) for d in range(10)),
            splits=("train", "validation", "test"),
            mean=DEMO_MEAN,
            std=DEMO_STD,
        ),
    }
)


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(SPECS)}") from None
