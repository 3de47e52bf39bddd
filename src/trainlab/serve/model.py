"""The served model: a Predictor, what describes it (/v1/model, /v2/models/{name}), and the batch work.

Every picture goes through the Predictor's one decoding path (data.decoding.read_input), so the server,
`trainlab predict` and the Python API give the same probabilities for the same file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
from pathlib import Path
from typing import Any

import torch

from trainlab.checkpoint import load_checkpoint
from trainlab.data.decoding import InputImage, import_decoders, read_input
from trainlab.engine.runtime import resolve_device
from trainlab.errors import TrainlabError
from trainlab.inference.predictor import ModelOutput, Predictor, unlike_figures
from trainlab.layout import CHECKPOINT_FOLDER
from trainlab.serve.reports import find_reports
from trainlab.serve.settings import ServeSettings

SAMPLE_COUNT = 12  # test images the page offers to click


class ServedModel:
    """A checkpoint loaded once for serving: its Predictor, metadata, model card and sample images."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        torch.set_num_threads(settings.threads)
        self.loaded = load_checkpoint(settings.checkpoint, settings.trust_pickle)
        self.predictor = Predictor.from_checkpoint(
            self.loaded,
            model=settings.model,
            dataset=settings.dataset,
            device=resolve_device(settings.device),
            trust_model_code=settings.trust_model_code,
        )
        self.predictor.input_style("auto")  # an old checkpoint's look, measured now rather than on a request
        import_decoders()  # torchvision takes seconds to import: now, not during the first requests
        self.name = settings.name or default_name(Path(settings.checkpoint), self.loaded.path)
        self.run_dir = run_directory(Path(settings.checkpoint), self.loaded.path)
        self.sha256 = file_sha256(self.loaded.path)
        self.skipped_reports = find_reports(self.run_dir)[1]  # {file name: why}, said at start-up
        self.per_class: list[dict[str, Any]] | None = None
        self.samples: list[tuple[int, str, bytes]] = []  # (test index, true label, PNG)
        self.card_pending = True
        self.card_note: str | None = None

    def forward_seconds(self, images: int = 16, repeats: int = 5) -> float:
        """The median time of one forward pass of `images` blank pictures (after one untimed pass)."""
        import time

        batch = torch.zeros(images, *self.input_shape(), dtype=torch.uint8)
        self.predictor.outputs(batch)  # what a request runs: the unlike score included
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            self.predictor.outputs(batch)
            times.append(time.perf_counter() - started)
        return sorted(times)[len(times) // 2]

    def setup_thread(self) -> None:
        """In the model thread: torch's thread count is per thread, and a second spinning OpenMP thread on a
        2-core machine made every forward pass 10-30x slower while the event loop ran beside it."""
        torch.set_num_threads(self.settings.threads)

    @property
    def prep(self):
        return self.predictor.preprocessing

    def input_shape(self) -> tuple[int, int, int]:
        return self.prep.channels, self.prep.height, self.prep.width

    def reports(self) -> dict[str, Path]:
        """The run's report pictures that are served (regular files inside the run directory)."""
        return find_reports(self.run_dir)[0]

    def describe(self) -> dict[str, Any]:
        """GET /v1/model: what the model is, takes and scored."""
        config = self.loaded.config or {}
        metrics = self.loaded.payload.get("metrics") or []
        last = metrics[-1] if metrics and isinstance(metrics[-1], dict) else {}
        channels, height, width = self.input_shape()
        return {
            "name": self.name,
            "model": self.predictor.model_name,
            "dataset": config.get("dataset", self.settings.dataset if self.loaded.kind != "trainlab" else None),
            "classes": list(self.predictor.classes),
            "input": {"channels": channels, "height": height, "width": width, "datatype": "UINT8"},
            "preprocessing": self.prep.to_dict(),
            "parameters": sum(p.numel() for p in self.predictor.model.parameters()),
            "test_accuracy": last.get("test_accuracy"),
            "epochs": len(metrics) or None,
            "checkpoint": self.loaded.path.name,
            "checkpoint_kind": self.loaded.kind,
            "sha256": self.sha256,
            "reports": {key: f"/v1/model/reports/{key}.png" for key in self.reports()},
            "per_class": self.per_class,
            "per_class_pending": self.card_pending,
            "token_required": self.settings.token is not None,
            "unlike": unlike_figures(self.predictor.unlike),
        }

    def oip_metadata(self) -> dict[str, Any]:
        """GET /v2/models/{name}: the Open Inference Protocol's model metadata."""
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "pytorch_trainlab",
            "inputs": [{"name": "images", "datatype": "UINT8", "shape": [-1, *self.input_shape()]}],
            "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.predictor.classes)]},
                *(
                    {"name": "unlike_score", "datatype": "FP32", "shape": [-1]},
                    {"name": "unlike_training", "datatype": "BOOL", "shape": [-1]},
                )[: 2 if self.predictor.unlike else 0],
            ],
        }

    def load_card(self) -> None:
        """Per-class test figures and sample images from the run's test set, when a copy is here (in a thread)."""
        from trainlab.inference.evaluation import load_test_split
        from trainlab.reports.classification import confusion_matrix, per_class_report

        try:
            given = {"data_dir": self.settings.data_dir} if self.settings.data_dir else {}
            if self.loaded.config is None:
                given["dataset"] = self.settings.dataset
            test, _ = load_test_split(self.loaded, self.predictor, given, download=False, input_style="raw")
            predicted = torch.cat(
                [
                    self.predictor.probabilities(test.images[start : start + 1000]).argmax(1)
                    for start in range(0, len(test), 1000)
                ]
            )
            self.per_class = per_class_report(
                confusion_matrix(predicted, test.labels, len(self.predictor.classes)), self.predictor.classes
            )
            step = max(1, len(test) // SAMPLE_COUNT)
            self.samples = [
                (i, test.classes[int(test.labels[i])], png_bytes(test.images[i].cpu()))
                for i in range(0, min(len(test), step * SAMPLE_COUNT), step)
            ]
        except (TrainlabError, OSError) as exc:  # no copy of the data here: the card leaves these parts out
            self.card_note = f"no per-class figures or sample images: {exc}"
        finally:
            self.card_pending = False

    def start_card(self) -> threading.Thread:
        thread = threading.Thread(target=self.load_card, name="trainlab-model-card", daemon=True)
        thread.start()
        return thread

    def read(self, data: bytes, name: str, input_style: str) -> InputImage:
        """One uploaded picture (`name` in messages) as the model receives it: the Predictor's own decoding path."""
        return read_input(data, self.prep, input_style, name)

    def forward(self, batches: list[torch.Tensor]) -> list[ModelOutput]:
        """The model thread's work: the uint8 batches of several requests in one forward pass, their
        probabilities and unlike scores split back per request."""
        output = self.predictor.outputs(torch.cat(batches) if len(batches) > 1 else batches[0])
        return output.split([len(batch) for batch in batches])

    def predictions_body(
        self,
        output: ModelOutput,
        inputs: list[InputImage],
        names: list[str | None],
        top_k: int,
        include_input: bool,
    ) -> bytes:
        """/v1/predict's answer: per picture what `trainlab predict --json` prints (and the model's input)."""
        predictions = []
        for prediction, item, name in zip(self.predictor.top_predictions(output, top_k), inputs, names, strict=True):
            prediction.input_style, prediction.input_reason = item.choice.style, item.choice.reason
            values = {"image": name, **prediction.to_dict()}
            if include_input:
                values["model_input"] = "data:image/png;base64," + base64.b64encode(png_bytes(item.tensor)).decode()
            predictions.append(values)
        return json.dumps({"model": self.name, "predictions": predictions}).encode()

    def inference_body(self, output: ModelOutput, request_id: str | None, names: tuple[str, ...] = ()) -> bytes:
        """The Open Inference Protocol's answer: the outputs asked for by name (output_names; none asked: the
        probabilities, one FP32 tensor [N, classes]); unlike_score is FP32 [N], unlike_training BOOL [N]."""
        probabilities = output.probabilities
        tensors = {"probabilities": ("FP32", list(probabilities.shape), probabilities.flatten().tolist())}
        if output.unlike_scores is not None:
            scores = output.unlike_scores.tolist()
            flags = [p.unlike_training for p in self.predictor.top_predictions(output)]
            tensors.update(unlike_score=("FP32", [len(scores)], scores), unlike_training=("BOOL", [len(flags)], flags))
        outputs = [
            {"name": name, "datatype": datatype, "shape": shape, "data": data}
            for name, (datatype, shape, data) in tensors.items()
            if name in (names or ("probabilities",))
        ]
        return json.dumps(
            {
                "model_name": self.name,
                "model_version": "1",
                **({"id": request_id} if request_id is not None else {}),
                "outputs": outputs,
            }
        ).encode()

    def output_names(self) -> list[str]:
        """The Open Inference Protocol outputs this model answers with (the unlike ones with an unlike record)."""
        return ["probabilities", *(("unlike_score", "unlike_training") if self.predictor.unlike else ())]


def png_bytes(image: torch.Tensor) -> bytes:
    """A uint8 (C, H, W) tensor as PNG bytes."""
    from torchvision.transforms.v2 import functional as F

    buffer = io.BytesIO()
    F.to_pil_image(image).save(buffer, format="PNG")
    return buffer.getvalue()


def run_directory(given: Path, checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (given, or the folder above checkpoints/), else None."""
    if given.is_dir():
        return given
    if checkpoint.parent.name == CHECKPOINT_FOLDER:
        return checkpoint.parent.parent
    return None


def default_name(given: Path, checkpoint: Path) -> str:
    """The model's name in URLs: its run directory's name, else the file's stem, as [A-Za-z0-9._-]."""
    folder = run_directory(given, checkpoint)
    raw = (folder.resolve().name if folder is not None else checkpoint.stem) or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.") or "model"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
