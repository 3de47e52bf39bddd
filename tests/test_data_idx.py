"""The IDX data path: gzipped and plain files read to the same uint8 tensors, in torchvision's layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.data import BatchLoader, ImageData, Preprocessing, load_dataset, load_split
from trainlab.data.builtin import FASHION_MNIST, resolve_data_dir
from trainlab.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_bytes

from conftest import FASHION_CLASSES, make_images, write_fashion_layout, write_idx


def test_gzipped_and_plain_files_load_to_identical_tensors(tmp_path):
    plain = load_dataset(data_dir=write_fashion_layout(tmp_path / "plain"), download=False)
    gzipped = load_dataset(data_dir=write_fashion_layout(tmp_path / "gz", compress=True), download=False)
    assert sorted(p.name for p in (tmp_path / "gz" / "FashionMNIST" / "raw").iterdir())[0].endswith(".gz")
    for split in ("train", "test"):
        a, b = getattr(plain, split), getattr(gzipped, split)
        assert torch.equal(a.images, b.images)
        assert torch.equal(a.labels, b.labels)


def test_splits_have_the_tutorials_shapes_and_types(tiny_data):
    data = load_dataset(data_dir=tiny_data, download=False)
    assert data.train.images.shape == (640, 1, 28, 28)
    assert data.test.images.shape == (160, 1, 28, 28)
    assert data.train.images.dtype == torch.uint8
    assert data.train.labels.dtype == torch.int64
    assert data.train.labels.shape == (640,)
    assert data.classes == FASHION_CLASSES
    assert data.train.image_shape == (1, 28, 28)


def test_pixels_and_labels_are_the_files_bytes(tiny_data):
    images, labels = make_images(160, seed=1)  # what conftest wrote as the test split
    test = load_split("fashion-mnist", "test", tiny_data, download=False)
    assert np.array_equal(test.images[:, 0].numpy(), images)
    assert np.array_equal(test.labels.numpy(), labels.astype(np.int64))


def test_idx_header_gives_the_shape(tmp_path):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / "x-idx3-ubyte", array)
    tensor = parse_idx(read_bytes(path), IMAGES_MAGIC, str(path))
    assert tensor.shape == (2, 3, 5)
    assert np.array_equal(tensor.numpy(), array)
    labels = write_idx(tmp_path / "y-idx1-ubyte", np.array([3, 1, 4], dtype=np.uint8), compress=True)
    assert parse_idx(read_bytes(labels), LABELS_MAGIC, str(labels)).tolist() == [3, 1, 4]


def test_data_dir_comes_from_the_flag_then_the_environment_then_data(monkeypatch, tmp_path):
    assert str(resolve_data_dir(None)) == "data"
    monkeypatch.setenv("TRAINLAB_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"


def test_files_live_in_torchvisions_layout(tmp_path):
    assert FASHION_MNIST.raw_dir(tmp_path) == tmp_path / "FashionMNIST" / "raw"
    assert FASHION_MNIST.file_names("train") == ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    assert FASHION_MNIST.file_names("test") == ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def test_preprocessing_is_the_tutorials_to_tensor():
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    x = Preprocessing()(images)
    assert x.dtype == torch.float32
    assert torch.equal(x, images.float() / 255)  # what ToTensor() computes


def test_batches_are_file_order_slices_without_shuffle():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    data = ImageData(images, torch.arange(10), tuple("abcdefghij"))
    loader = BatchLoader(data, batch_size=4)
    assert len(loader) == 3
    assert [labels.tolist() for _, labels in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [labels.tolist() for _, labels in loader.batches(epoch=0, start_batch=2)] == [[8, 9]]


def test_shuffled_order_depends_only_on_seed_and_epoch():
    data = ImageData(torch.zeros(50, 1, 1, 1, dtype=torch.uint8), torch.arange(50), ("a",))
    order = lambda seed, epoch: torch.cat([y for _, y in BatchLoader(data, 8, True, seed).batches(epoch)])  # noqa: E731
    assert torch.equal(order(0, 1), order(0, 1))
    assert not torch.equal(order(0, 1), order(0, 2))
    assert not torch.equal(order(0, 1), order(1, 1))
    assert sorted(order(0, 1).tolist()) == list(range(50))


@pytest.mark.slow
def test_real_fashion_mnist_files_match_their_checksums_and_shapes(real_data):
    import hashlib

    raw = FASHION_MNIST.raw_dir(real_data)
    for name, md5 in FASHION_MNIST.md5.items():
        content = read_bytes(raw / name) if (raw / name).is_file() else read_bytes(raw / f"{name}.gz")
        assert hashlib.md5(content).hexdigest() == md5, name  # noqa: S324
    data = load_dataset(data_dir=real_data, download=False)
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train.labels).tolist() == [6000] * 10
    assert data.classes[int(data.test.labels[0])] == "Ankle boot"  # the tutorial's test_data[0]
