"""Input styles: pictures made to look like the training images (raw, photo, auto), the look recorded at
training time, --show-input, and the accuracy on realistic pictures of real test images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from trainlab import Predictor, load_dataset
from trainlab.checkpoint import load_checkpoint
from trainlab.data import Preprocessing
from trainlab.data.decoding import load_image, read_input
from trainlab.data.input_styles import DataLook, measure_look
from trainlab.testing.photos import Scene, render

from conftest import assert_one_line_error, make_images, train_tiny_run

pytestmark = pytest.mark.usefixtures("no_run_reports")
FASHION_LOOK = DataLook(background=0.0, plain=0.98, fill=1.0)


def garment(seed: int = 0) -> np.ndarray:
    """A light 28x28 shape on black filling the frame's height, like a Fashion-MNIST dress."""
    rng = np.random.default_rng(seed)
    image = np.zeros((28, 28), dtype=np.uint8)
    for row in range(28):
        half = 4 + row // 4
        image[row, 14 - half : 14 + half] = 150 + rng.integers(0, 100, size=2 * half)
    return image


def as_input(picture: Image.Image, tmp_path, style: str, look: DataLook | None = FASHION_LOOK):
    path = tmp_path / "picture.png"
    picture.save(path)
    return read_input(path, Preprocessing(look=look), style)


def test_the_look_of_generated_training_images_is_a_black_background_that_objects_fill():
    images, _ = make_images(640, seed=0)
    look = measure_look(torch.from_numpy(images).unsqueeze(1))
    assert look.background < 60 and look.dark  # noise 0-59 around a bright band
    assert look.plain > 0.9
    assert look.fill == pytest.approx(20 / 28, abs=0.05)  # the bands span columns 4 to 23


def test_on_a_plain_28x28_test_image_auto_chooses_raw_and_gives_exactly_the_raw_probabilities(tmp_path):
    data_dir, run_dir = train_tiny_run(tmp_path)
    predictor = Predictor.from_checkpoint(run_dir)
    test = load_dataset(data_dir=data_dir, download=False).test
    paths = []
    for index in range(8):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(test.images[index, 0].numpy()).save(paths[-1])
    auto = predictor.predict_files(paths, top_k=10, input_style="auto")
    raw = predictor.predict_files(paths, top_k=10, input_style="raw")
    assert [p.input_style for p in auto] == ["raw"] * 8
    assert [p.top for p in auto] == [p.top for p in raw]
    assert torch.equal(torch.stack([load_image(p, predictor.preprocessing, "auto") for p in paths]), test.images[:8])


def test_a_dark_garment_photo_comes_out_as_the_light_on_black_original(tmp_path):
    original = garment()
    for scene in (Scene(), Scene((420, 300), (222, 222, 222), scale=6, offset=(0.7, 0.4)), Scene(jpeg=40)):
        item = as_input(render(original, scene), tmp_path, "auto")
        assert item.choice.style == "photo", item.choice
        assert "light background" in item.choice.reason
        difference = (item.tensor[0].float() - torch.from_numpy(original).float()).abs().mean()
        assert difference < 20, (scene, difference)  # levels, of 255
        assert int(item.tensor[0, :, 0].max()) == 0 and int(item.tensor[0, :, -1].max()) == 0  # black margins


def test_raw_keeps_the_photos_polarity_and_frame(tmp_path):
    item = as_input(render(garment(), Scene()), tmp_path, "raw")
    assert item.choice.style == "raw"
    assert int(item.tensor[0, 0, 0]) == 255  # the white background stays white


@pytest.mark.parametrize("strokes, background", [((255, 255, 255), (0, 0, 0)), ((0, 0, 0), (255, 255, 255))])
def test_a_canvas_drawing_in_either_polarity_becomes_the_same_centred_image(strokes, background, tmp_path):
    drawing = np.zeros((28, 28), dtype=np.uint8)
    drawing[6:20, 9:13] = 255  # a small mark, off to one side of the canvas
    picture = render(drawing, Scene((280, 280), background, strokes, scale=10, offset=(0.5, -0.3)))
    item = as_input(picture, tmp_path, "auto")
    assert item.choice.style == "photo"
    rows = torch.nonzero(item.tensor[0].sum(dim=1) > 0).view(-1)
    cols = torch.nonzero(item.tensor[0].sum(dim=0) > 0).view(-1)
    assert rows[0] == 0 and rows[-1] == 27  # the mark's longest side fills the frame, as Fashion-MNIST objects do
    assert abs(int(cols[0]) + int(cols[-1]) - 27) <= 1  # centred
    assert int(item.tensor[0, 14, 14]) > 200 and int(item.tensor[0, 0, 0]) == 0


def test_auto_keeps_natural_images_raw_when_the_training_images_have_no_plain_background(tmp_path):
    scene_like = DataLook(background=110.0, plain=0.2, fill=1.0)  # as CIFAR-10 measures
    item = as_input(render(garment(), Scene()), tmp_path, "auto", look=scene_like)
    assert item.choice.style == "raw" and "no plain background" in item.choice.reason


def test_a_picture_whose_corners_differ_is_kept_raw(tmp_path):
    pixels = np.zeros((100, 100), dtype=np.uint8)
    pixels[:50] = 255  # a horizon: light above, dark below
    item = as_input(Image.fromarray(pixels), tmp_path, "auto")
    assert item.choice.style == "raw" and "corners" in item.choice.reason


def test_the_checkpoint_records_the_look_and_an_old_one_falls_back_to_the_builtin_set(tmp_path):
    data_dir, run_dir = train_tiny_run(tmp_path)
    look = load_checkpoint(run_dir).preprocessing["look"]
    assert look == measure_look(load_dataset(data_dir=data_dir, download=False).train.images).to_dict()
    payload = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    del payload["preprocessing"]["look"]  # as written before looks were recorded
    torch.save(payload, tmp_path / "old.pt")
    predictor = Predictor.from_checkpoint(tmp_path / "old.pt")
    assert predictor.notes == [] and predictor.preprocessing.look is None  # nothing measured for raw pictures
    render(garment(), Scene()).save(tmp_path / "photo.png")
    predictor.read_files([tmp_path / "photo.png"], "auto")
    assert predictor.preprocessing.look.to_dict() == look
    assert predictor.notes == [
        f"the checkpoint does not record its training images' look; measured on fashion-mnist: "
        f"{predictor.preprocessing.look.describe()}"
    ]


def test_predict_says_the_style_and_why_and_show_input_draws_the_model_input(run_main, tmp_path):
    _, run_dir = train_tiny_run(tmp_path)
    render(garment(), Scene()).save(tmp_path / "photo.jpg")
    result = run_main(
        "predict",
        run_dir,
        tmp_path / "photo.jpg",
        "--input-style",
        "auto",
        "--show-input",
        tmp_path / "seen.png",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.splitlines()[-1])
    prediction = values["predictions"][0]
    assert prediction["input_style"] == "photo" and "light background" in prediction["input_style_reason"]
    assert "input style photo: 300x300 on a light background" in result.stderr
    assert values["show_input_png"] == str(tmp_path / "seen.png")
    with Image.open(tmp_path / "seen.png") as drawn:
        assert drawn.format == "PNG" and drawn.width > 300 and drawn.height > 150


def test_a_wrong_input_style_is_one_line(run_main, tmp_path):
    result = run_main("predict", tmp_path / "run", "x.png", "--input-style", "sketch")
    assert_one_line_error(result, "--input-style", "sketch")


def test_input_styles_apply_to_files_only(run_main, tmp_path):
    _, run_dir = train_tiny_run(tmp_path)
    result = run_main("predict", run_dir, "--test-index", "0", "--input-style", "photo")
    assert_one_line_error(result, "--test-index", "--input-style")


def test_evaluate_on_a_folder_of_photos_reads_them_as_predict_does(run_main, tmp_path):
    data_dir, run_dir = train_tiny_run(tmp_path)
    test = load_dataset(data_dir=data_dir, download=False).test
    paths, labels = [], []
    for index in range(40):
        label = int(test.labels[index])
        folder = tmp_path / "photos" / test.classes[label].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(folder / f"{index}.png")
        labels.append(label)
        render(test.images[index, 0].numpy(), Scene((200, 160), (236, 236, 236), scale=5), index).save(paths[-1])
    predictor = Predictor.from_checkpoint(run_dir)
    chosen = {}
    for style in ("auto", "raw"):
        flags = () if style == "auto" else ("--input-style", "raw")  # auto: the default for pictures named
        result = run_main("evaluate", run_dir, "--dataset", "folder", "--image-dir", tmp_path / "photos", *flags)
        assert result.returncode == 0, result.stderr
        figures = json.loads(
            run_main(
                "evaluate", run_dir, "--dataset", "folder", "--image-dir", tmp_path / "photos", *flags, "--json"
            ).stdout.splitlines()[-1]
        )
        predicted = predictor.predict_files(paths, input_style=style)
        assert figures["correct"] == sum(p.index == y for p, y in zip(predicted, labels, strict=True))
        assert ("input style auto: each picture" in result.stdout) == (style == "auto")
        chosen[style] = [(p.input_style, p.index) for p in predicted]
    assert {choice for choice, _ in chosen["auto"]} == {"photo"}  # light-background pictures of 200x160
    assert [index for _, index in chosen["auto"]] != [index for _, index in chosen["raw"]]


def test_evaluate_reads_the_checkpoints_own_pictures_as_in_training(run_main, tmp_path):
    root = tmp_path / "shapes"
    for split in ("train", "test"):
        for label, name in enumerate(("left", "right")):
            (root / split / name).mkdir(parents=True)
            for i in range(6):
                pixels = np.full((40, 40), 200, dtype=np.uint8)
                pixels[5:35, 20 * label : 20 * label + 20] = 10 + i
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    from trainlab import TrainConfig, fit

    config = TrainConfig(dataset="folder", image_dir=str(root), image_size=20, epochs=2, threads=1, device="cpu")
    fit(config, run_dir=tmp_path / "run")
    own = run_main("evaluate", tmp_path / "run")
    assert own.returncode == 0, own.stderr
    assert (
        "input style raw: the checkpoint's own test pictures, read as in training (--input-style auto or photo reads "
        "them as it reads photos)\n"
    ) in own.stdout
    result = run_main("evaluate", tmp_path / "run", "--input-style", "photo", "--dataset", "mnist")
    assert_one_line_error(result, "--input-style is for pictures", "mnist")


@pytest.mark.slow
def test_on_realistic_pictures_of_real_test_images_auto_stays_near_the_plain_accuracy(real_data, tmp_path):
    from trainlab import TrainConfig, fit
    from trainlab.testing.photos import VARIANTS

    data = load_dataset(data_dir=real_data, download=False)
    config = TrainConfig(optimizer="adam", epochs=2, device="cpu", threads=2, data_dir=str(real_data))
    with pytest.MonkeyPatch.context() as patch:
        import trainlab.reports.run_reports as run_reports

        patch.setattr(run_reports, "write_run_reports", lambda analysis: [])
        fit(config, data=data, run_dir=tmp_path / "run")
    predictor = Predictor.from_checkpoint(tmp_path / "run")
    count, labels = 300, data.test.labels[:300].tolist()
    accuracy = {}
    for number, (name, make) in enumerate(VARIANTS.items()):
        paths = []
        for index in range(count):
            paths.append(tmp_path / f"{number}-{index}.png")
            make(data.test.images[index, 0].numpy(), index).save(paths[-1], compress_level=1)  # lossless, fast
        for style in ("auto", "raw") if number < 2 else ("auto",):
            predicted = predictor.predict_files(paths, input_style=style)
            accuracy[name, style] = sum(p.index == y for p, y in zip(predicted, labels, strict=True)) / count
    plain = accuracy["plain 28x28", "auto"]
    assert plain == accuracy["plain 28x28", "raw"] and plain > 0.8
    assert accuracy["dark on white, 300x300 RGB", "raw"] < 0.3  # the before figure
    # the README's table (500 images) holds each variant within 3 points; on these 300, within 5 (the model's
    # weights, and so its mistakes, differ from one CPU to another: 4 points on 150 failed on an AMD EPYC)
    below = {name: round(plain - accuracy[name, "auto"], 3) for name in VARIANTS}
    assert {name: points for name, points in below.items() if points > 0.05} == {}
