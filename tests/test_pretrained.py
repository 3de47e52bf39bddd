"""Fine-tuning from torchvision's pretrained weights (issue 30.1a): names resolved through torchvision's weights API,
files in torch's own cache, the weights' preprocessing as the run's, the head new for the data's classes.

No test touches the network: weight files are made here (a torchvision model built with weights=None) under
torchvision's own file names in a temporary TORCH_HOME, and any socket connection raises.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import models
from torchvision.transforms.v2 import functional as F

from trainlab.testing.image_sets import SHAPE_CLASSES, shapes, write_class_folders

from conftest import assert_one_line_error, write_fashion_layout

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
MOBILENET_FILE = "mobilenet_v3_small-047dcff4.pth"  # MobileNet_V3_Small_Weights.IMAGENET1K_V1, torchvision's name
RESNET_FILE = "resnet18-f37072fd.pth"  # ResNet18_Weights.IMAGENET1K_V1
CLASSES = SHAPE_CLASSES  # 4


def block_network(patch: pytest.MonkeyPatch) -> list[str]:
    """Every connection attempt is recorded and fails as on a machine without network."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError(101, "Network is unreachable (blocked by the test)")

    patch.setattr(socket.socket, "connect", refuse)
    patch.setattr(socket, "create_connection", refuse)
    patch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(*a) or [])
    return attempts


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch):
    """A test that opens a connection fails, unless it empties the list itself (the offline test)."""
    attempts = block_network(monkeypatch)
    yield attempts
    assert not attempts, f"the test tried to reach the network: {attempts}"


def cache_weights(torch_home: Path, name: str, file_name: str) -> dict[str, torch.Tensor]:
    """A torchvision model's fresh state_dict saved in TORCH_HOME as torchvision's weights file; returns it."""
    torch.manual_seed(1)
    state = models.get_model(name, weights=None).state_dict()
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / file_name)
    return state


def photo_folders(root: Path) -> Path:
    """ROOT/train and ROOT/test of 40x40 gray PNG shapes in 4 classes: 12 training and 8 test pictures."""
    images, labels = shapes(20, side=40, channels=1)
    write_class_folders(root / "train", images[:12], labels[:12], CLASSES)
    write_class_folders(root / "test", images[12:], labels[12:], CLASSES)
    return root


def train_args(photos: Path, run_dir: Path, *flags: str) -> list[str]:
    return [
        "train",
        "--image-dir",
        str(photos),
        "--run-dir",
        str(run_dir),
        "--epochs",
        "1",
        "--batch-size",
        "6",
        "--max-steps",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--workers",
        "0",
        *flags,
    ]


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory: pytest.TempPathFactory):
    """A one-step run of tv:mobilenet_v3_small --weights DEFAULT (body frozen, so its tensors stay the file's),
    trained offline from a weights file in a temporary TORCH_HOME; (stdout, run dir, the file's tensors, photos)."""
    from trainlab.cli import main

    root = tmp_path_factory.mktemp("pretrained")
    photos = photo_folders(root / "photos")
    with pytest.MonkeyPatch.context() as patch:
        attempts = block_network(patch)
        patch.setenv("TORCH_HOME", str(root / "torch"))
        import trainlab.reports.run_reports as run_reports

        patch.setattr(run_reports, "write_run_reports", lambda analysis: [])
        state = cache_weights(root / "torch", "mobilenet_v3_small", MOBILENET_FILE)
        flags = ("--model", "tv:mobilenet_v3_small", "--weights", "DEFAULT", "--freeze", "net.features")
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(train_args(photos, root / "run", *flags))
        assert code == 0
        assert not attempts
    return out.getvalue(), root / "run", state, photos, root / "torch"


def test_default_weights_resolve_through_torchvision_and_load_from_torchs_cache_offline(pretrained_run):
    stdout, run_dir, state, _, torch_home = pretrained_run
    cached = torch_home / "hub" / "checkpoints" / MOBILENET_FILE
    assert f"Pretrained weights MobileNet_V3_Small_Weights.IMAGENET1K_V1 from {cached}" in stdout
    assert "new for the data's classes: net.classifier.3.bias, net.classifier.3.weight" in stdout
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["config"]["weights"] == "IMAGENET1K_V1"  # DEFAULT recorded as the weights it named
    # frozen body: exactly the file's weights and batch-norm statistics (num_batches_tracked only counts steps)
    body = [key for key in state if key.startswith("features.") and not key.endswith("num_batches_tracked")]
    assert body
    for key in body:
        torch.testing.assert_close(checkpoint["model_state"][f"net.{key}"], state[key], rtol=0, atol=0)
    assert checkpoint["model_state"]["net.classifier.3.weight"].shape == (len(CLASSES), 1024)


def test_the_weights_preprocessing_is_the_runs_recorded_and_used_by_predict(pretrained_run):
    from trainlab.inference import Predictor

    _, run_dir, _, photos, _ = pretrained_run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    expected = {"channels": 3, "height": 224, "width": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": 256}
    recorded = {key: checkpoint["preprocessing"][key] for key in expected}
    assert recorded == expected
    transforms = models.get_weight("MobileNet_V3_Small_Weights.IMAGENET1K_V1").transforms()
    assert (transforms.resize_size, transforms.crop_size) == ([256], [224])

    picture = sorted((photos / "test" / "ring").glob("*.png"))[0]
    predictor = Predictor.from_checkpoint(run_dir / "checkpoints" / "last.pt")
    read = predictor.read_files([picture], "raw")[0].tensor
    from PIL import Image

    gray = torch.from_numpy(np.array(Image.open(picture).convert("RGB"))).permute(2, 0, 1)
    torch.testing.assert_close(read, F.center_crop(F.resize(gray, 256, antialias=True), [224, 224]))
    model_input = predictor.preprocessing(read[None])
    want = (read[None].float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(model_input, want)
    assert predictor.predict_files([picture], input_style="raw")[0].label in CLASSES


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (("--image-size", "64"), ("--image-size 64 contradicts --weights DEFAULT", "224x224", "leave --image-size")),
        (("--normalize",), ("--normalize (the training images' own mean and std) contradicts --weights DEFAULT",)),
        (("--channels", "1"), ("--channels 1 contradicts --weights DEFAULT", "RGB")),
    ],
)
def test_a_flag_that_contradicts_the_weights_preprocessing_is_refused_naming_both(
    flags, fragments, tmp_path, monkeypatch, run_main
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    photos = photo_folders(tmp_path / "photos")
    result = run_main(*train_args(photos, tmp_path / "run", "--model", "tv:resnet18", "--weights", "DEFAULT", *flags))
    line = assert_one_line_error(result, *fragments)
    assert "resize 256, centre crop 224, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)" in line
    assert not (tmp_path / "run").exists()


def test_no_cached_file_and_no_network_is_one_line_naming_the_file_its_url_and_the_folder_within_seconds(
    tmp_path, monkeypatch, run_main, no_network
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    photos = photo_folders(tmp_path / "photos")
    started = time.monotonic()
    result = run_main(*train_args(photos, tmp_path / "run", "--model", "tv:resnet18", "--weights", "IMAGENET1K_V1"))
    seconds = time.monotonic() - started
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    assert_one_line_error(
        result,
        f"--weights IMAGENET1K_V1: {RESNET_FILE} (ResNet18_Weights.IMAGENET1K_V1) is not in torch's cache",
        f"download https://download.pytorch.org/models/{RESNET_FILE} and put it in {folder}",
    )
    assert seconds < 10
    assert no_network  # it did try, once the network was the only place left
    no_network.clear()
    assert not (tmp_path / "run").exists()
    assert not list(folder.glob("*"))  # no partial file left in the cache


def test_an_unknown_weight_name_is_one_line_listing_the_models_weights(tmp_path, monkeypatch, run_main):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = run_main(*train_args(tmp_path, tmp_path / "run", "--model", "tv:resnet18", "--weights", "IMAGENET22K"))
    assert_one_line_error(
        result, "--weights IMAGENET22K is no weight of tv:resnet18; choose one of: IMAGENET1K_V1, DEFAULT"
    )


def test_weights_with_a_model_that_is_not_torchvisions_is_one_line(tmp_path, run_main):
    result = run_main(*train_args(tmp_path, tmp_path / "run", "--model", "cnn", "--weights", "DEFAULT"))
    assert_one_line_error(result, "--weights DEFAULT (pretrained weights) apply to tv:NAME models", "--init-from")


def test_init_from_a_run_with_another_class_count_replaces_the_head_and_keeps_the_body(
    tmp_path, run_main, no_run_reports
):
    data = write_fashion_layout(tmp_path / "fashion")  # 10 classes
    first = ["train", "--data-dir", str(data), "--model", "cnn", "--max-steps", "2", "--device", "cpu"]
    assert run_main(*first, "--run-dir", str(tmp_path / "first")).returncode == 0
    images, labels = shapes(20, side=28, channels=1)  # 4 classes, gray 28x28 like the first run's
    write_class_folders(tmp_path / "photos" / "train", images[:12], labels[:12], CLASSES)
    write_class_folders(tmp_path / "photos" / "test", images[12:], labels[12:], CLASSES)

    second = train_args(tmp_path / "photos", tmp_path / "second", "--model", "cnn", "--freeze", "features")
    result = run_main(*second, "--init-from", str(tmp_path / "first"))
    assert result.returncode == 0, result.stderr
    source = tmp_path / "first" / "checkpoints" / "last.pt"
    assert (
        f"Initialized weights from {source} but its classifier head, which is shaped for another number of "
        "classes: new classifier.1.weight, classifier.1.bias" in result.stdout
    )
    before = torch.load(source, weights_only=True)["model_state"]
    after = torch.load(tmp_path / "second" / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    body = [key for key in before if not key.startswith("classifier.1.") and not key.endswith("num_batches_tracked")]
    for key in body:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
    assert after["classifier.1.weight"].shape[0] == len(CLASSES)


def test_predict_takes_every_picture_through_the_weights_resize_and_crop_whatever_its_look(pretrained_run):
    from trainlab.inference import Predictor

    _, run_dir, _, photos, _ = pretrained_run
    picture = sorted((photos / "test" / "disc").glob("*.png"))[0]
    predictor = Predictor.from_checkpoint(run_dir / "checkpoints" / "last.pt")
    auto, raw = predictor.read_files([picture])[0], predictor.read_files([picture], "raw")[0]
    assert auto.choice.style == "raw"
    assert auto.choice.reason == "resized and centre-cropped as the pretrained weights' own transforms do"
    assert torch.equal(auto.tensor, raw.tensor)


class Planted:
    """Unpickling this calls Path.touch on a marker: a weights file that would run code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("damaged", "PytorchStreamReader failed reading zip archive: not a ZIP archive"),
        ("code", "Weights only load failed"),
    ],
)
def test_a_damaged_or_code_carrying_file_in_torchs_cache_is_one_line_and_never_runs(
    content, reason, tmp_path, monkeypatch, run_main
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    marker = tmp_path / "ran"
    if content == "damaged":
        (folder / RESNET_FILE).write_bytes(b"PK\x03\x04 not a whole file")
    else:
        torch.save({"fc.weight": Planted(marker)}, folder / RESNET_FILE)
    photos = photo_folders(tmp_path / "photos")
    result = run_main(*train_args(photos, tmp_path / "run", "--model", "tv:resnet18", "--weights", "DEFAULT"))
    assert_one_line_error(
        result,
        f"--weights IMAGENET1K_V1: {folder / RESNET_FILE} cannot be read as weights ({reason}); delete it to "
        "download it again",
    )
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


class FakeDownload:
    """What urlopen answers with: a body of `data`, whose SHA-256 is not the one torchvision's file name carries."""

    def __init__(self, data: bytes):
        import email.message
        import io

        self.body, self.headers = io.BytesIO(data), email.message.Message()
        self.headers["Content-Length"] = str(len(data))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def info(self):
        return self.headers

    def read(self, size: int = -1) -> bytes:
        return self.body.read(size)


def test_a_download_whose_hash_differs_from_torchvisions_file_name_is_refused_and_leaves_no_file(
    tmp_path, monkeypatch, run_main
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    urls: list[str] = []

    def answer(request, *args, **kwargs):
        urls.append(request.full_url)
        return FakeDownload(b"not the published weights")

    monkeypatch.setattr(torch.hub, "urlopen", answer)
    photos = photo_folders(tmp_path / "photos")
    result = run_main(*train_args(photos, tmp_path / "run", "--model", "tv:resnet18", "--weights", "IMAGENET1K_V1"))
    assert_one_line_error(
        result, f"{RESNET_FILE} (ResNet18_Weights.IMAGENET1K_V1)", 'invalid hash value (expected "f37072fd"'
    )
    assert urls == [f"https://download.pytorch.org/models/{RESNET_FILE}"]
    assert not list((tmp_path / "torch" / "hub" / "checkpoints").glob("*"))  # nothing half-written in the cache


def test_googlenet_and_vit_weights_record_the_builder_arguments_torchvision_sets_for_them():
    from trainlab.config import TrainConfig
    from trainlab.models.pretrained import pretrained_config

    googlenet = pretrained_config(TrainConfig(model="tv:googlenet", weights="DEFAULT"), fetch=False)
    assert (googlenet.weights, googlenet.extra) == ("IMAGENET1K_V1", {"transform_input": True})
    vit = pretrained_config(TrainConfig(model="tv:vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1"), fetch=False)
    assert vit.extra == {"image_size": 384}


def test_a_built_in_gray_set_with_rgb_weights_repeats_its_channels_into_the_weights_normalization(
    tmp_path, monkeypatch, run_main, no_run_reports
):
    from trainlab.inference import Predictor

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache_weights(tmp_path / "torch", "mobilenet_v3_small", MOBILENET_FILE)
    data = write_fashion_layout(tmp_path / "fashion")
    flags = ["--model", "tv:mobilenet_v3_small", "--weights", "DEFAULT", "--max-steps", "1", "--device", "cpu"]
    result = run_main("train", "--data-dir", str(data), "--run-dir", str(tmp_path / "run"), *flags)
    assert result.returncode == 0, result.stderr
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    preprocessing = predictor.preprocessing
    assert (preprocessing.channels, preprocessing.height, preprocessing.resize) == (3, 28, None)
    assert (list(preprocessing.mean), list(preprocessing.std)) == (IMAGENET_MEAN, IMAGENET_STD)
    gray = torch.full((1, 1, 28, 28), 255, dtype=torch.uint8)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(preprocessing(gray)[0, :, 0, 0], expected)
    evaluated = run_main("evaluate", str(tmp_path / "run"), "--data-dir", str(data), "--device", "cpu")
    assert evaluated.returncode == 0, evaluated.stderr


def test_an_export_of_a_pretrained_run_carries_the_weights_preprocessing_to_predict(pretrained_run, tmp_path, run_main):
    from trainlab.inference import Predictor

    _, run_dir, _, photos, _ = pretrained_run
    exported = tmp_path / "model.safetensors"
    assert run_main("export", str(run_dir), "--format", "safetensors", "--out", str(exported)).returncode == 0
    from_export = Predictor.from_checkpoint(exported)
    from_run = Predictor.from_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert from_export.preprocessing.to_dict() == from_run.preprocessing.to_dict()
    assert from_export.preprocessing.resize == 256
    picture = sorted((photos / "test" / "square").glob("*.png"))[0]
    torch.testing.assert_close(
        from_export.probabilities(from_export.read_files([picture])[0].tensor[None]),
        from_run.probabilities(from_run.read_files([picture])[0].tensor[None]),
    )


@pytest.mark.parametrize("resize", [10**9, "256", -1])
def test_a_checkpoint_whose_recorded_resize_is_malformed_is_refused_in_one_line(
    resize, pretrained_run, tmp_path, run_main
):
    _, run_dir, _, photos, _ = pretrained_run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    checkpoint["preprocessing"]["resize"] = resize
    crafted = tmp_path / "crafted.pt"
    torch.save(checkpoint, crafted)
    picture = sorted((photos / "test" / "disc").glob("*.png"))[0]
    result = run_main("predict", str(crafted), str(picture))
    assert_one_line_error(
        result, f"{crafted}: its preprocessing record is malformed (resize is {resize!r}, not a whole number"
    )


def test_init_from_a_run_with_as_many_but_other_classes_makes_the_head_new(tmp_path, run_main, no_run_reports):
    data = write_fashion_layout(tmp_path / "fashion")  # 10 classes: T-shirt/top ... Ankle boot
    first = ["train", "--data-dir", str(data), "--model", "cnn", "--max-steps", "2", "--device", "cpu"]
    assert run_main(*first, "--run-dir", str(tmp_path / "first")).returncode == 0
    digits = tuple(str(digit) for digit in range(10))  # as many classes, other ones: the head's outputs mean others
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), np.arange(30) % 10
    write_class_folders(tmp_path / "digits" / "train", images[:20], labels[:20], digits)
    write_class_folders(tmp_path / "digits" / "test", images[20:], labels[20:], digits)

    second = train_args(tmp_path / "digits", tmp_path / "second", "--model", "cnn", "--freeze", "features")
    result = run_main(*second, "--init-from", str(tmp_path / "first"), "--no-fine-tune")
    assert result.returncode == 0, result.stderr
    source = tmp_path / "first" / "checkpoints" / "last.pt"
    assert (
        f"Initialized weights from {source} but its classifier head, which is made for other classes: "
        "new classifier.1.weight, classifier.1.bias" in result.stdout
    )
    before = torch.load(source, weights_only=True)["model_state"]
    after = torch.load(tmp_path / "second" / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    assert not torch.equal(after["classifier.1.weight"], before["classifier.1.weight"])
    torch.testing.assert_close(after["features.0.0.weight"], before["features.0.0.weight"], rtol=0, atol=0)
