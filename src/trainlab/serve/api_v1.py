"""The /v1 JSON API: health, readiness, the model card, its reports and sample images, and predictions."""

from __future__ import annotations

from typing import Literal

import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from trainlab.config import INPUT_STYLES
from trainlab.serve import schemas
from trainlab.serve.errors import JSON, ApiError
from trainlab.serve.reports import report_png, review_rows
from trainlab.serve.serving import json_response, serving
from trainlab.serve.settings import MAX_TOP_K
from trainlab.serve.uploads import request_images

router = APIRouter(prefix="/v1")


@router.get("/health", tags=["health"], response_model=schemas.Health)
@router.head("/health", include_in_schema=False)
async def health() -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@router.head("/ready", include_in_schema=False)
@router.get("/ready", tags=["health"], response_model=schemas.Ready, responses={503: {"model": schemas.Error}})
async def ready(request: Request) -> Response:
    """Readiness: the model is loaded and taking requests."""
    state = serving(request)
    state.check_ready()
    return json_response({"ready": True, "model": state.served.name})


@router.get("/model", tags=["model"], response_model=schemas.ModelInfo)
async def model_info(request: Request) -> Response:
    """The model: name, classes, input, preprocessing, parameters, test figures, checkpoint sha256."""
    return json_response(serving(request).served.describe())


@router.get("/model/reports/{key}.png", tags=["model"], response_class=Response)
async def model_report(key: str, request: Request) -> Response:
    """The run's learning curves, confusion matrix or review grid (PNG)."""
    return Response(report_png(serving(request).served.run_dir, key), media_type="image/png")


@router.get("/model/review", tags=["model"])
async def model_review(request: Request) -> Response:
    """The run's review (`trainlab review RUN`): its first suspects and how many it lists; 404 without one."""
    return json_response(review_rows(serving(request).served.run_dir))


@router.get("/samples", tags=["model"], response_model=schemas.Samples)
async def samples(request: Request) -> Response:
    """Test images from the run's data set (none when no copy of it is here)."""
    served = serving(request).served
    return json_response(
        {
            "pending": served.card_pending,  # still being read at start-up: ask again shortly
            "samples": [
                {"index": index, "label": label, "url": f"/v1/samples/{index}.png"}
                for index, label, _ in served.samples
            ],
        }
    )


@router.get("/samples/{index}.png", tags=["model"], response_class=Response)
async def sample_image(index: int, request: Request) -> Response:
    """One sample test image as PNG."""
    for number, _, png in serving(request).served.samples:
        if number == index:
            return Response(png, media_type="image/png")
    raise ApiError(404, f"no sample image {index}; GET /v1/samples lists them")


@router.post(
    "/predict",
    tags=["predict"],
    response_model=schemas.PredictResponse,
    responses={code: {"model": schemas.Error} for code in (401, 413, 415, 422, 503)},
    openapi_extra={"requestBody": schemas.PREDICT_BODY},
)
async def predict(
    request: Request,
    top_k: int = Query(3, ge=1, le=MAX_TOP_K, description="classes listed per image"),
    input_style: Literal[INPUT_STYLES] = Query("auto", description="as in `trainlab predict`"),  # config's list
    include_input: bool = Query(False, description="add the picture the model received, as a PNG data URL"),
) -> Response:
    """Classify one image sent as the body (Content-Type image/png, image/jpeg, ...) or several sent as
    multipart files: per image the label, class index, probability and top-k, as `trainlab predict --json`."""
    state = serving(request)
    state.batcher.arriving += 1
    try:
        files, names = await request_images(request)
        inputs = await state.read_pictures(files, names, input_style)
    finally:
        state.batcher.arriving -= 1
    output = await state.classify(torch.stack([item.tensor for item in inputs]))
    body = state.served.predictions_body(output, inputs, names, top_k, include_input)
    return Response(body, media_type=JSON)
