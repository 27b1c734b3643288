"""lsr_hf.data: specs, loading from each Hub layout (written locally), splits, decoding, augmentation, demo."""

from __future__ import annotations

import io
import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from datasets import ClassLabel, Dataset, Features, Image, Sequence, Value
from PIL import Image as PILImage
from scipy.signal import resample_poly
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from data_fixtures import (
    png_bytes,
    write_gtzan_folder,
    write_gtzan_parquet,
    write_image_folder,
    write_image_parquet,
)
from lsr_hf.data import SPECS, DataConfig, PreparedData, get_spec, prepare_data
from lsr_hf.data.audio import AudioClipDataset, AudioCollator, AudioSegmentDataset, decode_audio
from lsr_hf.data.image import ImageBatchTransform, ImageCollator, crop_flip, rotate
from lsr_hf.data.load import LABEL_COLUMN, load_raw_splits

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
GTZAN_FILE_RATE, GTZAN_RATE = 4000, 3000  # tiny clips: 1 s at 4 kHz, resampled to 3 kHz, 0.25 s segments


def read_parquet_images(file: Path, image_column: str, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Independent reader: pyarrow + PIL, no datasets."""
    table = pq.read_table(file)
    cells = table[image_column].to_pylist()
    images = np.stack([np.asarray(PILImage.open(io.BytesIO(cell["bytes"])).convert("RGB")) for cell in cells])
    return images, np.asarray(table[label_column].to_pylist())


def as_hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


def row_multiset(images: np.ndarray) -> Counter:
    return Counter(im.tobytes() for im in images)


# ------------------------------------------------------------------------------------------------------ config


def test_config_defaults_are_valid() -> None:
    cfg = DataConfig()
    assert cfg.name == "demo" and cfg.to_dict()["sample_rate"] == 22050


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),  # any other name is a Hub dataset id (tests/test_any_dataset.py)
        ("name", "my images"),
        ("path", ""),
        ("input_column", ""),
        ("label_column", 3),
        ("validation_fraction", 0.0),
        ("validation_fraction", 1.0),
        ("validation_fraction", "0.1"),
        ("test_fraction", -0.1),
        ("test_fraction", 0.95),  # + validation_fraction 0.1 >= 1
        ("split_seed", -1),
        ("split_seed", 1.5),
        ("max_train_samples", 0),
        ("max_eval_samples", True),
        ("random_crop_padding", -1),
        ("random_crop_padding", 2.0),
        ("horizontal_flip", "yes"),
        ("rotation_degrees", -1.0),
        ("rotation_degrees", 181.0),
        ("rotation_degrees", math.nan),
        ("sample_rate", 0),
        ("sample_rate", 16000.5),
        ("segment_seconds", 0.0),
        ("segment_seconds", 1e-9),
        ("mean", [0.5, 0.5]),
        ("std", [0.2, 0.0, 0.2]),
        ("image_size", 0),
    ],
)
def test_config_rejects_invalid_values_naming_the_field(field: str, value: object) -> None:
    kwargs = {"name": "cifar10", field: value}
    with pytest.raises(ValueError) as err:
        DataConfig(**kwargs)
    assert str(err.value).startswith(field), str(err.value)


def test_config_rejects_path_for_demo_and_equal_columns() -> None:
    with pytest.raises(ValueError, match=r"^path"):
        DataConfig(name="demo", path="/tmp/x")
    with pytest.raises(ValueError, match=r"^label_column"):
        DataConfig(name="cifar10", input_column="x", label_column="x")


# ------------------------------------------------------------------------------------------------------- specs


def test_specs_match_the_hub_datasets() -> None:
    expected = {  # (hub id, input column, label column, classes, splits)
        "cifar10": ("uoft-cs/cifar10", "img", "label", 10, ("train", "test")),
        "cifar100": ("uoft-cs/cifar100", "img", "fine_label", 100, ("train", "test")),
        "cinic10": ("flwrlabs/cinic10", "image", "label", 10, ("train", "validation", "test")),
        "gtzan": ("confit/gtzan-parquet", "audio", "label", 10, ("train", "validation", "test")),
    }
    for name, (hub_id, input_column, label_column, k, splits) in expected.items():
        spec = get_spec(name)
        got = (spec.hub_id, spec.input_column, spec.label_column, spec.num_classes, spec.splits)
        assert got == (hub_id, input_column, label_column, k, splits)
    fine = get_spec("cifar100").class_names
    assert list(fine) == sorted(fine) and fine[0] == "apple" and fine[-1] == "worm" and len(set(fine)) == 100
    assert get_spec("gtzan").sample_rate == 22050 and get_spec("gtzan").class_names[5] == "jazz"
    assert get_spec("cifar10").class_names[3] == "cat"


def test_get_spec_unknown_lists_the_names() -> None:
    with pytest.raises(ValueError) as err:
        get_spec("mnist")
    for name in SPECS:
        assert name in str(err.value)


# --------------------------------------------------------------------------------------------- image datasets


@pytest.fixture(scope="module")
def cifar10_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_parquet(tmp_path_factory.mktemp("c10"), "cifar10", n_per_class=10, size=8)


def test_cifar10_parquet_loads_with_carved_stratified_validation(cifar10_path: Path) -> None:
    data = prepare_data(DataConfig(name="cifar10", path=str(cifar10_path)))
    assert isinstance(data, PreparedData)
    assert (data.num_classes, data.modality, data.sample_rate, data.num_skipped) == (10, "image", None, 0)
    assert data.class_names == get_spec("cifar10").class_names
    assert (len(data.train), len(data.validation), len(data.test)) == (90, 10, 100)
    # stratified: 10 % of 10 images per class = one validation image per class
    assert sorted(data.validation.labels.tolist()) == list(range(10))
    assert Counter(data.train.labels.tolist()) == {c: 9 for c in range(10)}

    # decoded pixels and labels equal the files (read independently), test split in file order
    images, labels = read_parquet_images(cifar10_path / "plain_text" / "test-00000-of-00001.parquet", "img", "label")
    np.testing.assert_array_equal(as_hwc(data.test.images), images)
    np.testing.assert_array_equal(data.test.labels.numpy(), labels)
    # train + validation is exactly the train file, without overlap
    images, _ = read_parquet_images(cifar10_path / "plain_text" / "train-00000-of-00001.parquet", "img", "label")
    carved = np.concatenate([as_hwc(data.train.images), as_hwc(data.validation.images)])
    assert row_multiset(carved) == row_multiset(images)

    item = data.train[0]
    assert item["pixel_values"].dtype == torch.uint8 and item["pixel_values"].shape == (3, 8, 8)
    assert isinstance(item["labels"], int)
    batch = next(iter(DataLoader(data.train, batch_size=16, collate_fn=data.train_collator)))
    assert batch["pixel_values"].dtype == torch.float32 and batch["pixel_values"].shape == (16, 3, 8, 8)
    assert batch["labels"].dtype == torch.int64 and batch["labels"].shape == (16,)


def test_validation_split_is_seeded(cifar10_path: Path) -> None:
    def validation(seed: int) -> torch.Tensor:
        return prepare_data(DataConfig(name="cifar10", path=str(cifar10_path), split_seed=seed)).validation.images

    first, again, other = validation(1), validation(1), validation(2)
    assert torch.equal(first, again)
    assert row_multiset(as_hwc(first)) != row_multiset(as_hwc(other))


def test_max_samples_keep_seeded_subsets(cifar10_path: Path) -> None:
    cfg = DataConfig(name="cifar10", path=str(cifar10_path), max_train_samples=7, max_eval_samples=5)
    a, b = prepare_data(cfg), prepare_data(cfg)
    assert (len(a.train), len(a.validation), len(a.test)) == (7, 5, 5)
    assert torch.equal(a.train.images, b.train.images)
    full = prepare_data(DataConfig(name="cifar10", path=str(cifar10_path)))
    assert set(row_multiset(as_hwc(a.train.images))) <= set(row_multiset(as_hwc(full.train.images)))


def test_cifar100_uses_fine_labels_and_ignores_coarse(tmp_path: Path) -> None:
    path = write_image_parquet(tmp_path, "cifar100", n_per_class=2, size=4)
    data = prepare_data(DataConfig(name="cifar100", path=str(path), validation_fraction=0.5))
    assert data.num_classes == 100 and (len(data.train), len(data.validation), len(data.test)) == (100, 100, 200)
    table = pq.read_table(path / "cifar100" / "test-00000-of-00001.parquet")
    fine, coarse = np.asarray(table["fine_label"].to_pylist()), np.asarray(table["coarse_label"].to_pylist())
    assert not np.array_equal(fine, coarse)
    np.testing.assert_array_equal(data.test.labels.numpy(), fine)


def test_cinic10_keeps_its_own_validation_split(tmp_path: Path) -> None:
    path = write_image_parquet(tmp_path, "cinic10", n_per_class=3, size=4)
    data = prepare_data(DataConfig(name="cinic10", path=str(path)))
    assert (len(data.train), len(data.validation), len(data.test)) == (30, 30, 30)
    images, labels = read_parquet_images(path / "data" / "validation-00000-of-00001.parquet", "image", "label")
    np.testing.assert_array_equal(as_hwc(data.validation.images), images)
    np.testing.assert_array_equal(data.validation.labels.numpy(), labels)


def test_image_folder_loads_with_labels_from_folder_names(tmp_path: Path) -> None:
    path = write_image_folder(tmp_path, "cifar10", n_per_class=3, size=4)
    data = prepare_data(DataConfig(name="cifar10", path=str(path), validation_fraction=1 / 3, test_fraction=0.2))
    assert (len(data.train), len(data.validation), len(data.test)) == (20, 10, 30)
    for class_id, name in enumerate(get_spec("cifar10").class_names):
        files = sorted((path / "test" / name).glob("*.png"))
        expected = row_multiset(np.stack([np.asarray(PILImage.open(f).convert("RGB")) for f in files]))
        got = row_multiset(as_hwc(data.test.images[data.test.labels == class_id]))
        assert got == expected, name


def test_single_parquet_file_is_split_three_ways(cifar10_path: Path) -> None:
    file = cifar10_path / "plain_text" / "test-00000-of-00001.parquet"
    raw = load_raw_splits(DataConfig(name="cifar10", path=str(file), validation_fraction=0.1, test_fraction=0.2))
    sizes = {name: len(ds) for name, ds in raw.items()}
    assert sizes == {"train": 70, "validation": 10, "test": 20}
    for name, ds in raw.items():
        assert ds.column_names == ["image", LABEL_COLUMN]
        assert set(Counter(ds[LABEL_COLUMN]).values()) == {sizes[name] // 10}


# ------------------------------------------------------------------------------------------- column errors


def test_missing_column_names_it_the_recipe_key_and_the_columns(cifar10_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        prepare_data(DataConfig(name="cifar10", path=str(cifar10_path), label_column="fine_label"))
    message = str(err.value)
    assert "'fine_label'" in message and "data.label_column" in message and "img, label" in message
    with pytest.raises(ValueError) as err:
        prepare_data(DataConfig(name="cifar10", path=str(cifar10_path), input_column="image"))
    assert "'image'" in str(err.value) and "data.input_column" in str(err.value) and "img, label" in str(err.value)


def test_bad_paths_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^path .* does not exist"):
        load_raw_splits(DataConfig(name="cifar10", path=str(tmp_path / "missing")))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"^path must be a .parquet file or a folder"):
        load_raw_splits(DataConfig(name="cifar10", path=str(tmp_path / "notes.txt")))
    with pytest.raises(ValueError, match=r"^path .* no parquet files and no audio files"):
        load_raw_splits(DataConfig(name="gtzan", path=str(tmp_path)))
    (tmp_path / "song.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"must be in a folder named after its class"):
        load_raw_splits(DataConfig(name="gtzan", path=str(tmp_path)))


def test_input_column_without_images_is_rejected(tmp_path: Path) -> None:
    path = write_image_parquet(tmp_path, "cifar100", n_per_class=1, size=4, splits=("test",))
    file = path / "cifar100" / "test-00000-of-00001.parquet"
    with pytest.raises(ValueError, match=r"'coarse_label' \(data.input_column\).*must hold images"):
        load_raw_splits(DataConfig(name="cifar100", path=str(file), input_column="coarse_label"))


def write_labelled_parquet(path: Path, labels: list, label_feature: object) -> Path:
    """A one-file image dataset with a chosen label column; image i is filled with the value 8 * i."""
    images = [{"bytes": png_bytes(np.full((4, 4, 3), 8 * i, np.uint8)), "path": None} for i in range(len(labels))]
    features = Features({"img": Image(), "label": label_feature})
    Dataset.from_dict({"img": images, "label": labels}, features=features).to_parquet(str(path))
    return path


@pytest.mark.parametrize(
    ("labels", "feature", "match"),
    [
        ([0.0, 1.0] * 10, Value("float32"), r"'label' \(data.label_column\).*integer class ids or class names"),
        ([True, False] * 10, Value("bool"), r"integer class ids or class names"),
        ([[0], [1]] * 10, Sequence(Value("int64")), r"integer class ids or class names"),
        (["cat", "dogg"] * 10, Value("string"), r"not classes of the dataset: dogg"),
        ([0, 10] * 10, Value("int64"), r"class ids in \[0, 10\), got \[10\]"),
        ([0, -1] * 10, ClassLabel(names=["cat", "dog"]), r"without a label"),
        ([0, 1] * 10, ClassLabel(names=["cat", "kitten"]), r"class names that are not classes.*kitten"),
    ],
)
def test_bad_labels_are_rejected(tmp_path: Path, labels: list, feature: object, match: str) -> None:
    path = write_labelled_parquet(tmp_path / "x.parquet", labels, feature)
    with pytest.raises(ValueError, match=match):
        load_raw_splits(DataConfig(name="cifar10", path=str(path)))


def test_images_of_another_size_are_resized_to_the_training_size(tmp_path: Path) -> None:
    """Most training images are 4x6: the 4x4 ones, and every image of the other splits, are resized to 4x6 as PIL
    resizes (bilinear); nothing is skipped."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (4, 6, 3) if i % 4 else (4, 4, 3), dtype=np.uint8) for i in range(40)]
    features = Features({"img": Image(), "label": ClassLabel(names=list(get_spec("cifar10").class_names))})
    images = [{"bytes": png_bytes(a), "path": None} for a in arrays]
    Dataset.from_dict({"img": images[:32], "label": [0, 1] * 16}, features=features).to_parquet(
        str(tmp_path / "train.parquet")
    )
    Dataset.from_dict({"img": images[32:], "label": [0, 1] * 4}, features=features).to_parquet(
        str(tmp_path / "test.parquet")
    )
    data = prepare_data(DataConfig(name="cifar10", path=str(tmp_path), validation_fraction=0.25))
    assert data.num_skipped == 0 and data.train.images.shape[1:] == data.test.images.shape[1:] == (3, 4, 6)
    expected = [np.asarray(PILImage.fromarray(a).resize((6, 4), PILImage.Resampling.BILINEAR)) for a in arrays[32:]]
    np.testing.assert_array_equal(as_hwc(data.test.images), np.stack(expected))


def test_labels_given_as_names_or_other_classlabel_orders_are_mapped(tmp_path: Path) -> None:
    names = ["truck", "cat", "airplane"]  # a ClassLabel with its own order: ids are remapped by name
    for i, (labels, feature) in enumerate(
        [([0, 1, 2] * 10, ClassLabel(names=names)), (names * 10, Value("string")), ([9, 3, 0] * 10, Value("int64"))]
    ):
        path = write_labelled_parquet(tmp_path / f"{i}.parquet", labels, feature)
        raw = load_raw_splits(DataConfig(name="cifar10", path=str(path), validation_fraction=0.1, test_fraction=0.1))
        assert raw["train"].features[LABEL_COLUMN].names == list(get_spec("cifar10").class_names)
        for ds in raw.values():  # image i has value 8 * i and class [9, 3, 0][i % 3]
            for row in ds.with_format("numpy"):
                assert row[LABEL_COLUMN] == [9, 3, 0][int(row["image"][0, 0, 0]) // 8 % 3]


# --------------------------------------------------------------------------------------------- augmentation


def random_images(b: int = 64, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, 256, (b, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Undo normalisation with MEAN/STD (the values were k/255)."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return ((x * std + mean) * 255).round().to(torch.uint8)


def test_eval_transform_is_exact_normalisation() -> None:
    images = random_images(seed=1)
    out = ImageBatchTransform(train=False, mean=MEAN, std=STD)(
        [{"pixel_values": im, "labels": i % 10} for i, im in enumerate(images)]
    )
    expected = (images.double() / 255 - torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)) / torch.tensor(
        STD, dtype=torch.float64
    ).view(3, 1, 1)
    assert out["pixel_values"].dtype == torch.float32 and out["pixel_values"].shape == images.shape
    torch.testing.assert_close(out["pixel_values"].double(), expected, atol=1e-6, rtol=0)
    assert out["labels"].dtype == torch.int64 and out["labels"].tolist() == [i % 10 for i in range(len(images))]


def test_train_crops_are_shifted_windows_of_the_zero_padded_image() -> None:
    torch.manual_seed(0)
    images, pad = random_images(b=128), 3
    out = to_uint8(ImageBatchTransform(train=True, mean=MEAN, std=STD, padding=pad, flip=False).transform(images))
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    offsets = set()
    for image, crop in zip(padded, out):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(image[:, dy : dy + 8, dx : dx + 8], crop)
        ]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 20  # per-sample offsets (49 possible), not one for the batch


def test_flip_flips_about_half_of_the_batch() -> None:
    torch.manual_seed(0)
    images = random_images(b=128)
    out = to_uint8(ImageBatchTransform(train=True, mean=MEAN, std=STD, padding=0, flip=True).transform(images))
    same = [torch.equal(o, i) for o, i in zip(out, images)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    assert all(s != m for s, m in zip(same, mirrored))  # each sample exactly one of the two
    assert 32 < sum(mirrored) < 96


def test_no_augmentation_when_disabled() -> None:
    images = random_images()
    train = ImageBatchTransform(train=True, mean=MEAN, std=STD, padding=0, flip=False, rotation_degrees=0.0)
    evaluation = ImageBatchTransform(train=False, mean=MEAN, std=STD, padding=4, rotation_degrees=30.0)
    assert torch.equal(train.transform(images), evaluation.transform(images))


def test_crop_flip_matches_a_hand_made_crop() -> None:
    images = random_images(b=3, h=5, w=7)
    top, left, flip = torch.tensor([0, 2, 4]), torch.tensor([4, 0, 1]), torch.tensor([False, True, True])
    out = crop_flip(images, top, left, flip, padding=2)
    for b in range(3):
        expected = torch.zeros(3, 5, 7, dtype=torch.uint8)
        for y in range(5):
            for x in range(7):
                sy, sx = int(top[b]) + y - 2, int(left[b]) + x - 2  # source pixel of the unpadded image
                if 0 <= sy < 5 and 0 <= sx < 7:
                    expected[:, y, x] = images[b, :, sy, sx]
        assert torch.equal(out[b], expected.flip(-1) if flip[b] else expected)


@pytest.mark.parametrize(("h", "w"), [(8, 8), (6, 10)])
def test_rotate_matches_torchvision(h: int, w: int) -> None:
    images = random_images(b=4, h=h, w=w).float() / 255
    angles = torch.tensor([0.0, 12.5, -30.0, 90.0])
    out = rotate(images, angles)
    for image, angle, got in zip(images, angles, out):
        expected = TF.rotate(image, float(angle), interpolation=InterpolationMode.NEAREST)
        assert torch.equal(got, expected)


def test_random_rotation_fills_with_black_and_keeps_pixels() -> None:
    torch.manual_seed(0)
    images = torch.full((64, 3, 16, 16), 200, dtype=torch.uint8)
    transform = ImageBatchTransform(train=True, mean=MEAN, std=STD, padding=0, flip=False, rotation_degrees=45.0)
    out = to_uint8(transform.transform(images))
    assert set(out.unique().tolist()) <= {0, 200}  # nearest neighbour, zero fill
    assert torch.all(out[:, :, 7:9, 7:9] == 200)  # the centre stays
    rotated = (out == 0).flatten(1).any(1)
    assert 40 < int(rotated.sum())  # most samples get a visible angle; corners turn black


# ------------------------------------------------------------------------------------------------------- audio


@pytest.fixture(scope="module")
def gtzan_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gtzan_parquet(
        tmp_path_factory.mktemp("gtzan"), n_per_class=2, seconds=1.0, sample_rate=GTZAN_FILE_RATE, corrupt=1
    )


def test_gtzan_parquet_decodes_resamples_segments_and_counts_corrupt_files(
    gtzan_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = DataConfig(
        name="gtzan", path=str(gtzan_path), sample_rate=GTZAN_RATE, segment_seconds=0.25, max_skipped_fraction=0.1
    )
    with caplog.at_level(logging.WARNING):
        data = prepare_data(cfg)
    assert (data.modality, data.sample_rate, data.num_classes, data.num_skipped) == ("audio", GTZAN_RATE, 10, 1)
    assert data.skipped == {"train": ["row 10 (jazz.00000.wav): Format not recognised"], "validation": [], "test": []}
    assert "the train split: skipped 1 of 20 audio files (5%): row 10 (jazz.00000.wav)" in caplog.text
    # 1 s at 4 kHz -> 3000 samples at 3 kHz = 4 segments of 750; 19 decodable training clips
    assert len(data.train) == 19 * 4 and len(data.validation) == 20 and len(data.test) == 20
    assert data.train[0]["input_values"].shape == (750,) and data.validation[0]["input_values"].shape == (4, 750)
    assert Counter(data.train[i]["labels"] for i in range(len(data.train)))[5] == 4  # jazz lost one clip

    # content: the validation clips equal the files resampled by an independent resampler (scipy)
    table = pq.read_table(gtzan_path / "data" / "validation-00000-of-00001.parquet")
    assert data.validation.decoded.labels.tolist() == table["label"].to_pylist()
    for i, cell in enumerate(table["audio"].to_pylist()[::5]):
        wave, rate = sf.read(io.BytesIO(cell["bytes"]), dtype="float64")
        assert rate == GTZAN_FILE_RATE
        expected = resample_poly(wave, 3, 4)
        got = data.validation[5 * i]["input_values"].flatten().double().numpy()
        assert got.shape == expected.shape == (3000,)
        np.testing.assert_allclose(got[100:-100], expected[100:-100], atol=0.02)

    batch = data.eval_collator([data.validation[i] for i in range(3)])
    assert batch["input_values"].shape == (3, 4, 750) and batch["input_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.int64
    batch = data.train_collator([data.train[i] for i in range(5)])
    assert batch["input_values"].shape == (5, 750)


def test_gtzan_training_segments_tile_the_clip(gtzan_path: Path) -> None:
    cfg = DataConfig(
        name="gtzan", path=str(gtzan_path), sample_rate=GTZAN_RATE, segment_seconds=0.25, max_skipped_fraction=0.1
    )
    data = prepare_data(cfg)
    clips = data.train.decoded.clips
    segments = torch.stack([data.train[i]["input_values"] for i in range(8)])
    torch.testing.assert_close(segments.view(2, 3000), clips[:2], rtol=0, atol=0)


def test_gtzan_genre_strings_work_as_labels_without_audio_feature(tmp_path: Path) -> None:
    path = write_gtzan_parquet(tmp_path, n_per_class=1, seconds=0.5, sample_rate=2000, corrupt=0, audio_feature=False)
    by_id = load_raw_splits(DataConfig(name="gtzan", path=str(path)))
    by_name = load_raw_splits(DataConfig(name="gtzan", path=str(path), label_column="genre"))
    for split in ("train", "validation", "test"):
        assert list(by_name[split][LABEL_COLUMN]) == list(by_id[split][LABEL_COLUMN]) == list(range(10))


def test_gtzan_full_set_folder_is_split_three_ways_stratified(tmp_path: Path) -> None:
    path = write_gtzan_folder(tmp_path, n_per_class=10, seconds=0.5, sample_rate=2000, corrupt=1)
    cfg = DataConfig(
        name="gtzan", path=str(path), sample_rate=2000, segment_seconds=0.5, split_seed=3, max_skipped_fraction=0.02
    )
    raw = load_raw_splits(cfg)
    paths = {name: [cell["path"] for cell in ds.with_format("arrow")[:]["audio"].to_pylist()]
             for name, ds in raw.items()}
    assert {name: len(p) for name, p in paths.items()} == {"train": 70, "validation": 10, "test": 20}
    every = sorted(p for p in (path / "genres_original").rglob("*.wav"))
    assert sorted(sum(paths.values(), [])) == sorted(f.relative_to(path).as_posix() for f in every)
    for name, per_class in (("train", 7), ("validation", 1), ("test", 2)):
        assert Counter(raw[name][LABEL_COLUMN]) == {c: per_class for c in range(10)}
        genres = Counter(p.split("/")[1] for p in paths[name])  # folder name = class, mapped to the right id
        assert genres == {g: per_class for g in get_spec("gtzan").class_names}
    assert list(load_raw_splits(cfg)["test"]["audio"]) == list(raw["test"]["audio"])  # seeded

    data = prepare_data(cfg)
    assert data.num_skipped == 1 and len(data.train) + len(data.validation) + len(data.test) == 99


def test_k_fold_tests_every_clip_exactly_once_and_never_trains_on_it(tmp_path: Path) -> None:
    path = write_gtzan_folder(tmp_path, n_per_class=5, seconds=0.5, sample_rate=2000, corrupt=0)

    def clips(ds) -> list[str]:
        return [cell["path"] for cell in ds.with_format("arrow")[:]["audio"].to_pylist()]

    every = sorted(f.relative_to(path).as_posix() for f in (path / "genres_original").rglob("*.wav"))
    tested: list[str] = []
    for fold in range(5):
        cfg = DataConfig(name="gtzan", path=str(path), num_folds=5, fold=fold, split_seed=7, validation_fraction=0.2)
        raw = load_raw_splits(cfg)
        names = {split: clips(ds) for split, ds in raw.items()}
        assert {split: len(n) for split, n in names.items()} == {"train": 30, "validation": 10, "test": 10}
        assert sorted(sum(names.values(), [])) == every  # the three splits partition the clips
        for split, per_class in (("train", 3), ("validation", 1), ("test", 1)):  # stratified
            assert Counter(raw[split][LABEL_COLUMN]) == {c: per_class for c in range(10)}
        tested += names["test"]
        assert clips(load_raw_splits(cfg)["test"]) == names["test"]  # seeded
    assert sorted(tested) == every  # over the folds: every clip is tested once
    first = {seed: DataConfig(name="gtzan", path=str(path), num_folds=5, split_seed=seed, validation_fraction=0.2)
             for seed in (7, 8)}
    assert clips(load_raw_splits(first[7])["test"]) != clips(load_raw_splits(first[8])["test"])


def test_k_fold_refuses_a_dataset_with_a_test_split_or_too_few_examples(tmp_path: Path) -> None:
    path = write_gtzan_folder(tmp_path / "few", n_per_class=3, seconds=0.5, sample_rate=2000, corrupt=0)
    with pytest.raises(ValueError, match=r"data.num_folds=5 needs at least 5 examples of every class.*only 3"):
        load_raw_splits(DataConfig(name="gtzan", path=str(path), num_folds=5))
    cifar = write_image_parquet(tmp_path / "cifar", "cifar10", n_per_class=5, size=8)
    with pytest.raises(ValueError, match=r"data.num_folds: .* has its own test split"):
        load_raw_splits(DataConfig(name="cifar10", path=str(cifar), num_folds=5))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_folds": 1}, r"num_folds must be an integer >= 2 or null, got 1"),
        ({"num_folds": 5, "fold": 5}, r"fold must be in \[0, 5\) with num_folds=5, got 5"),
        ({"num_folds": 5, "fold": -1}, r"fold must be an integer >= 0, got -1"),
        ({"fold": 2}, r"fold must be 0 when num_folds is null"),
    ],
)
def test_k_fold_fields_are_checked(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataConfig(name="gtzan", **fields)


def test_audio_folder_with_split_folders(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    for split, n in (("train", 4), ("test", 2)):  # <root>/data/<split>/<genre>/<file>.wav
        source = write_gtzan_folder(tmp_path / split, n_per_class=n, seconds=0.5, sample_rate=2000, corrupt=0)
        (root / "data").mkdir(parents=True, exist_ok=True)
        (source / "genres_original").rename(root / "data" / split)
    raw = load_raw_splits(DataConfig(name="gtzan", path=str(root), validation_fraction=0.25))
    assert {name: len(ds) for name, ds in raw.items()} == {"train": 30, "validation": 10, "test": 20}
    assert all(cell["path"].startswith("data/test/") for cell in raw["test"]["audio"])


def write_wav_dataset(waves: list[np.ndarray], rate: int) -> Dataset:
    """Rows of {bytes (float WAV), path} + labels, as load_raw_splits gives them."""
    cells = []
    for i, wave in enumerate(waves):
        buffer = io.BytesIO()
        sf.write(buffer, wave, rate, format="WAV", subtype="FLOAT")
        cells.append({"bytes": buffer.getvalue(), "path": f"{i}.wav"})
    audio = {"bytes": Value("binary"), "path": Value("string")}
    features = Features({"audio": audio, LABEL_COLUMN: ClassLabel(num_classes=3)})
    return Dataset.from_dict({"audio": cells, LABEL_COLUMN: [i % 3 for i in range(len(waves))]}, features=features)


def test_decode_audio_pads_crops_and_averages_channels() -> None:
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, size=(1000, 2)).astype(np.float32)
    long, short = rng.uniform(-0.5, 0.5, 1100).astype(np.float32), rng.uniform(-0.5, 0.5, 600).astype(np.float32)
    decoded = decode_audio(write_wav_dataset([stereo, long, short], 1000), sample_rate=1000, segment_seconds=0.25)
    assert (decoded.num_segments, decoded.segment_length, decoded.skipped) == (4, 250, [])  # median 1000 samples
    np.testing.assert_allclose(decoded.clips[0].numpy(), stereo.mean(axis=1), atol=1e-7)  # mono = channel mean
    np.testing.assert_array_equal(decoded.clips[1].numpy(), long[:1000])  # cropped
    np.testing.assert_array_equal(decoded.clips[2].numpy(), np.concatenate([short, np.zeros(400, np.float32)]))

    train, clips = AudioSegmentDataset(decoded), AudioClipDataset(decoded)
    assert len(train) == 4 + 4 + 3  # the short clip's 4th segment would be pure padding
    assert len(clips) == 3 and clips[2]["input_values"].shape == (4, 250)
    batch = AudioCollator()([train[i] for i in range(len(train))])
    assert batch["input_values"].shape == (11, 250) and batch["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 3


# -------------------------------------------------------------------------------------------------------- demo


def test_demo_is_the_digits_upscaled_and_split_stratified() -> None:
    from sklearn.datasets import load_digits

    data = prepare_data(DataConfig(name="demo"))
    assert (len(data.train), len(data.validation), len(data.test)) == (1258, 180, 359)
    assert data.class_names == tuple("0123456789") and data.train.images.shape[1:] == (3, 32, 32)

    digits = load_digits()
    expected = np.rint(digits.images * 255 / 16).astype(np.uint8)
    expected = np.repeat(np.kron(expected, np.ones((1, 4, 4), np.uint8))[..., None], 3, axis=3)
    splits = {"train": data.train, "validation": data.validation, "test": data.test}
    every = np.concatenate([as_hwc(ds.images) for ds in splits.values()])
    assert row_multiset(every) == row_multiset(expected)  # all 1,797 digits, each once

    totals = Counter(digits.target.tolist())
    for name, fraction in (("train", 0.7), ("validation", 0.1), ("test", 0.2)):
        counts = Counter(splits[name].labels.tolist())
        for c in range(10):
            assert abs(counts[c] - fraction * totals[c]) <= 1.5, (name, c)

    train = data.train.images.double() / 255
    spec = get_spec("demo")
    np.testing.assert_allclose(train.mean(dim=(0, 2, 3)).numpy(), spec.mean, atol=1e-4)
    np.testing.assert_allclose(train.std(dim=(0, 2, 3)).numpy(), spec.std, atol=1e-4)
    assert data.eval_collator is not data.train_collator and not data.eval_collator.train and data.train_collator.train


def _per_item_batch(dataset, indices, key):
    return torch.stack([dataset[i][key] for i in indices]), torch.tensor([dataset[i]["labels"] for i in indices])


def test_batched_fetch_equals_item_by_item(cifar10_path: Path, gtzan_path: Path) -> None:
    """``__getitems__`` (what DataLoader calls with a batch of indices) gives the items ``__getitem__`` gives, and
    every collator takes either form to the same batch."""
    indices = [7, 0, 3, 3, 12]
    image = prepare_data(DataConfig(name="cifar10", path=str(cifar10_path)))
    fetched = image.train.__getitems__(indices)
    items = [image.train[i] for i in indices]
    pixels, labels = _per_item_batch(image.train, indices, "pixel_values")
    assert len(fetched) == 5 and torch.equal(fetched[1]["pixel_values"], items[1]["pixel_values"])
    for collate in (ImageCollator(), image.eval_collator):
        batched, listed = collate(fetched), collate(items)
        assert all(torch.equal(batched[k], listed[k]) for k in ("pixel_values", "labels"))
    assert torch.equal(ImageCollator()(fetched)["pixel_values"], pixels)
    assert torch.equal(ImageCollator()(fetched)["labels"], labels) and labels.dtype == torch.int64

    audio = prepare_data(
        DataConfig(
            name="gtzan", path=str(gtzan_path), sample_rate=GTZAN_RATE, segment_seconds=0.25, max_skipped_fraction=0.1
        )
    )
    for dataset in (audio.train, audio.validation):
        fetched = dataset.__getitems__(indices)
        values, labels = _per_item_batch(dataset, indices, "input_values")
        batch = audio.train_collator(fetched)
        assert torch.equal(batch["input_values"], values) and torch.equal(batch["labels"], labels)
        assert batch["labels"].dtype == torch.int64
        listed = audio.train_collator([dataset[i] for i in indices])
        assert torch.equal(listed["input_values"], values)
