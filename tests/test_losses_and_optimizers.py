"""Losses, optimizers and precisions: every loss with every optimizer learns, the formulas hold, every
precision trains."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from trainlab import TrainConfig, fit, load_dataset
from trainlab.checkpoint import load_checkpoint
from trainlab.data import Preprocessing
from trainlab.engine.loop import train_one_epoch
from trainlab.engine.losses import make_loss
from trainlab.training.optimizers import make_optimizer

from conftest import (
    make_images,
    read_metrics,
    small_mlp,
    train_args,
)

pytestmark = pytest.mark.usefixtures("no_run_reports")  # end-of-run PNGs are tested in test_reports


LOSSES = ("cross-entropy", "nll", "mse", "l1", "bce", "bce-with-logits")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
LR = {"sgd": 0.05, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3}  # sgd with momentum 0.9
# The loss of a model that outputs equal logits for 10 classes (uniform softmax, sigmoid 0.5), from each formula.
UNIFORM_LOSS = {
    "cross-entropy": math.log(10),
    "nll": math.log(10),
    "mse": (0.9**2 + 9 * 0.1**2) / 10,
    "l1": (0.9 + 9 * 0.1) / 10,
    "bce": math.log(2),
    "bce-with-logits": math.log(2),
}


@pytest.fixture(scope="module")
def bands():
    """The generated training images as tensors: 640 uint8 (1, 28, 28) images and their labels."""
    images, labels = make_images(640, seed=0)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_with_every_optimizer_trains_200_steps_and_learns_the_bands(bands, loss, optimizer):
    images, labels = bands
    model, preprocess = small_mlp(), Preprocessing()
    config = TrainConfig(loss=loss, optimizer=optimizer, lr=LR[optimizer], momentum=0.9 if optimizer == "sgd" else 0.0)
    loss_fn = make_loss(loss, 10)
    opt = make_optimizer(config, model.parameters())
    assert opt.param_groups[0]["lr"] == LR[optimizer]
    if optimizer == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9

    def whole_set() -> tuple[float, float]:
        with torch.no_grad():
            logits = model(preprocess(images))
        return loss_fn(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()

    initial_loss, _ = whole_set()
    # a freshly initialised net is close to uniform outputs, so the loss starts near its formula's value
    assert initial_loss == pytest.approx(UNIFORM_LOSS[loss], rel=0.1)
    for _ in range(10):  # 10 epochs x 20 batches of 32 = 200 steps
        batches = ((images[i : i + 32], labels[i : i + 32]) for i in range(0, 640, 32))
        train_one_epoch(model, batches, loss_fn, opt, preprocess)
    final_loss, accuracy = whole_set()
    assert final_loss < 0.5 * initial_loss
    assert accuracy >= 0.95


def test_cross_entropy_of_index_targets_equals_that_of_one_hot_probabilities():
    torch.manual_seed(1)
    logits, target = torch.randn(8, 10), torch.randint(0, 10, (8,))
    by_index = make_loss("cross-entropy", 10)(logits, target)
    by_probabilities = nn.CrossEntropyLoss()(logits, F.one_hot(target, 10).float())
    by_hand = -F.log_softmax(logits, dim=1)[torch.arange(8), target].mean()
    assert by_index.item() == pytest.approx(by_probabilities.item(), abs=1e-6)
    assert by_index.item() == pytest.approx(by_hand.item(), abs=1e-6)
    assert make_loss("nll", 10)(logits, target).item() == pytest.approx(by_index.item(), abs=1e-6)
    assert make_loss("bce", 10)(logits, target).item() == pytest.approx(
        make_loss("bce-with-logits", 10)(logits, target).item(), abs=1e-5
    )


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_mixes_the_loss_with_the_mean_over_all_classes(smoothing):
    """loss = (1 - e) * CE(target) + e * mean over the K classes of -log p_k."""
    torch.manual_seed(2)
    logits, target = torch.randn(16, 10), torch.randint(0, 10, (16,))
    log_p = F.log_softmax(logits, dim=1)
    expected = ((1 - smoothing) * -log_p[torch.arange(16), target] + smoothing * -log_p.mean(dim=1)).mean()
    smoothed = make_loss("cross-entropy", 10, label_smoothing=smoothing)(logits, target)
    plain = make_loss("cross-entropy", 10)(logits, target)
    assert smoothed.item() == pytest.approx(expected.item(), abs=1e-6)
    assert smoothed.item() != pytest.approx(plain.item(), abs=1e-3)


@pytest.mark.parametrize(
    "precision, model, extra",
    [
        ("fp32", "cnn", {"width": 8}),
        ("bf16", "cnn", {"width": 8}),
        ("fp16", "mlp", {}),  # fp16 convolutions are emulated on CPUs: 18 s an epoch of 640 images; the MLP, 1 s
    ],
)
def test_every_precision_trains_in_channels_last(precision, model, extra, tiny_data, tmp_path):
    data = load_dataset(data_dir=tiny_data, download=False)
    summary = fit(
        TrainConfig(
            model=model,
            precision=precision,
            channels_last=True,
            optimizer="adam",
            lr=3e-3,
            epochs=4,
            batch_size=32,
            device="cpu",
            threads=1,
            extra=extra,
        ),
        data=data,
        run_dir=tmp_path / "run",
    )
    assert summary["test_accuracy"] >= 0.95
    payload = load_checkpoint(tmp_path / "run").payload
    assert (payload["scaler_state"] is not None) == (precision == "fp16")  # fp16 trains with a grad scaler
    assert all(
        value.dtype == torch.float32 for key, value in payload["model_state"].items() if value.is_floating_point()
    )  # autocast never changes the stored weights


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx512_bf16", "avx2"}, ("bf16", "this CPU has avx512_bf16")),
        ({"amx_bf16", "avx512_bf16"}, ("bf16", "this CPU has amx_bf16 and avx512_bf16")),
        (
            {"avx2", "fma"},
            ("fp32", "this CPU has neither avx512_bf16 nor amx_bf16: bf16 would be emulated, many times slower"),
        ),
        (set(), ("fp32", "this CPU has neither avx512_bf16 nor amx_bf16: bf16 would be emulated, many times slower")),
    ],
)
def test_precision_auto_on_a_cpu_follows_its_bf16_flags(flags, expected, monkeypatch):
    from trainlab.engine import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    assert runtime.resolve_precision("auto", torch.device("cpu")) == expected
    assert runtime.resolve_precision("bf16", torch.device("cpu")) == ("bf16", "asked for")  # a choice stays


@pytest.mark.parametrize("supported, expected", [(True, "bf16"), (False, "fp32")])
def test_precision_auto_on_a_gpu_follows_its_bf16_support(supported, expected, monkeypatch):
    from trainlab.engine import runtime

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    precision, why = runtime.resolve_precision("auto", torch.device("cuda"))
    assert precision == expected
    assert why == ("Test GPU computes bf16 natively" if supported else "Test GPU has no native bf16")
    assert runtime.resolve_precision("auto", torch.device("mps")) == (
        "fp32",
        "bf16 speed on mps is not known to trainlab",
    )


def test_precision_auto_trains_as_fp32_on_a_cpu_without_bf16_and_says_so(tiny_data, tmp_path, monkeypatch, run_main):
    from trainlab.engine import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})
    auto = train_args(tiny_data, tmp_path / "auto", "--precision", "auto", "--epochs", "1")
    result = run_main(*auto)
    assert result.returncode == 0, result.stderr
    assert (
        "precision auto: fp32 (this CPU has neither avx512_bf16 nor amx_bf16: bf16 would be emulated, many times "
        "slower)" in result.stdout
    )
    assert run_main(*train_args(tiny_data, tmp_path / "fp32", "--epochs", "1")).returncode == 0
    auto_weights = load_checkpoint(tmp_path / "auto").model_state
    fp32_weights = load_checkpoint(tmp_path / "fp32").model_state
    assert all(torch.equal(auto_weights[key], fp32_weights[key]) for key in fp32_weights)  # exactly fp32's run


def test_the_speedrun_preset_lets_the_hardware_choose_its_precision():
    from trainlab.resolution import PRESETS

    assert PRESETS["speedrun"]["precision"] == "auto"


# Run in a fresh interpreter: this test process may have imported torch._dynamo already (other tests compile).
OPTIMIZERS_WITHOUT_DYNAMO = """
import json, sys
import torch
from trainlab import TrainConfig
from trainlab.training.optimizers import make_optimizer

def train(name, kind):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    config = TrainConfig(optimizer=name, lr=0.05, momentum=0.9, nesterov=name == "sgd", weight_decay=1e-3)
    if kind == "torch":
        optimizer = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
                     "adamw": torch.optim.AdamW}[name]
        kwargs = {"lr": 0.05, "weight_decay": 1e-3}
        if name in ("sgd", "rmsprop"):
            kwargs["momentum"] = 0.9
        if name == "sgd":
            kwargs["nesterov"] = True
        optimizer = optimizer(model.parameters(), **kwargs)
    else:
        optimizer = make_optimizer(config, model.parameters())
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=12)
    for _ in range(12):
        x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        schedule.step()
    state = optimizer.state_dict()
    return {"class": type(optimizer).__name__, "isinstance": isinstance(optimizer, type(optimizer).__mro__[1]),
            "weights": [p.tolist() for p in model.parameters()],
            "state": repr(state)}

names = ("sgd", "rmsprop", "adam", "adamw")
ours = {name: train(name, "trainlab") for name in names}
dynamo_after_ours = "torch._dynamo" in sys.modules
theirs = {name: train(name, "torch") for name in names}
dynamo_after_theirs = "torch._dynamo" in sys.modules
ours_with_dynamo_loaded = {name: train(name, "trainlab") for name in names}
print(json.dumps({"dynamo_after_ours": dynamo_after_ours, "dynamo_after_theirs": dynamo_after_theirs,
                  "ours": ours, "theirs": theirs, "ours_with_dynamo_loaded": ours_with_dynamo_loaded}))
"""


def test_trainlabs_optimizers_skip_the_dynamo_import_and_end_with_torchs_exact_weights_and_state():
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", OPTIMIZERS_WITHOUT_DYNAMO], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["dynamo_after_ours"] is False  # about 2 s of start-up that never happens
    assert report["dynamo_after_theirs"] is True  # torch's own classes import it: the check above means something
    for name in OPTIMIZERS:
        ours, theirs, later = report["ours"][name], report["theirs"][name], report["ours_with_dynamo_loaded"][name]
        assert ours["class"] == theirs["class"] and ours["isinstance"]
        assert ours["weights"] == theirs["weights"] == later["weights"], name  # bit for bit
        assert ours["state"] == theirs["state"] == later["state"], name


def test_a_compiled_run_gets_torchs_own_optimizer_classes():
    model = small_mlp()
    assert type(make_optimizer(TrainConfig(compile=True), model.parameters())) is torch.optim.SGD
    assert type(make_optimizer(TrainConfig(), model.parameters())) is not torch.optim.SGD


def test_a_torch_without_the_known_wrappers_gets_its_own_optimizer_classes(monkeypatch):
    from trainlab.training import optimizers

    monkeypatch.setattr(optimizers, "_wrapper_codes", lambda: None)
    optimizers.without_dynamo_import.cache_clear()
    try:
        assert optimizers.without_dynamo_import(torch.optim.Adam) is torch.optim.Adam
    finally:
        optimizers.without_dynamo_import.cache_clear()


def test_training_evaluating_and_predicting_never_import_torch_dynamo(tiny_data, tmp_path):
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    train = train_args(tiny_data, run_dir, "--epochs", "2", "--checkpoint-every", "3", "--preset", "speedrun")
    program = (
        "import sys\n"
        "from trainlab.cli import main\n"
        f"codes = [main({train + ['--threads', '1']!r}), main(['evaluate', {str(run_dir)!r}, '--data-dir', "
        f"{str(tiny_data)!r}]), main(['predict', {str(run_dir)!r}, '--test-index', '0', '--data-dir', "
        f"{str(tiny_data)!r}])]\n"
        "print(codes, 'torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "[0, 0, 0] False", result.stderr
    assert len(read_metrics(run_dir)) == 2
