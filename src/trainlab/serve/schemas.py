"""The shapes of the server's requests and answers, for validation (OIP requests) and the /docs page."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, StrictInt


class Error(BaseModel):
    error: str = Field(description="what is wrong and what to do, on one line")


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    ready: bool
    model: str


class TopClass(BaseModel):
    label: str
    probability: float


class ImagePrediction(BaseModel):
    image: str | None = Field(description="the multipart file's name; null for a raw body")
    label: str
    index: int
    probability: float
    top_k: list[TopClass]
    input_style: str = Field(description="raw or photo: how the picture was made to look like the training images")
    input_style_reason: str
    model_input: str | None = Field(None, description="with include_input: the model's input as a PNG data URL")


class PredictResponse(BaseModel):
    model: str
    predictions: list[ImagePrediction]


class ModelInfo(BaseModel):
    name: str = Field(description="the name in the /v2/models/{name} paths")
    model: str | None
    dataset: str | None
    classes: list[str]
    input: dict[str, Any]
    preprocessing: dict[str, Any]
    parameters: int
    test_accuracy: float | None
    epochs: int | None
    checkpoint: str
    checkpoint_kind: str
    sha256: str
    reports: dict[str, str]
    per_class: list[dict[str, Any]] | None
    per_class_pending: bool
    token_required: bool


class Sample(BaseModel):
    index: int
    label: str
    url: str


class Samples(BaseModel):
    pending: bool = Field(description="true while the server is still reading them at start-up")
    samples: list[Sample]


class InferenceTensor(BaseModel):
    """An Open Inference Protocol tensor: name, shape, datatype and row-major data (flat or nested)."""

    name: str
    shape: list[StrictInt]  # strict: JSON true is no dimension
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferenceTensor]
    outputs: list[RequestedOutput] | None = None


PREDICT_BODY = {  # /v1/predict reads its body itself (one image, or multipart files): described here for /docs
    "required": True,
    "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
            }
        },
    },
}
