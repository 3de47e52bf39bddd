"""The Open Inference Protocol (KServe V2) under /v2: server and model metadata, health, and inference on one
UINT8 tensor [N, C, H, W]."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from trainlab import __version__
from trainlab.serve import schemas
from trainlab.serve.errors import JSON, ApiError
from trainlab.serve.oip import oip_tensor
from trainlab.serve.serving import Serving, json_response, serving

TAGS = ["open inference protocol"]
router = APIRouter(prefix="/v2", tags=TAGS)


@router.get("")
async def oip_server() -> Response:
    """Server metadata."""
    return json_response({"name": "trainlab", "version": __version__, "extensions": []})


@router.get("/health/live")
@router.head("/health/live", include_in_schema=False)
async def oip_live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready")
@router.head("/health/ready", include_in_schema=False)
async def oip_ready(request: Request) -> Response:
    serving(request).check_ready()
    return json_response({"ready": True})


def named(request: Request, name: str) -> Serving:
    """The app's Serving when `name` is the served model's name; else 404."""
    state = serving(request)
    if name != state.served.name:
        raise ApiError(404, f"no model named {name!r}; this server serves {state.served.name!r}")
    return state


@router.get("/models/{name}")
async def oip_model(name: str, request: Request) -> Response:
    """Model metadata: its input (UINT8 [N, C, H, W]) and output (FP32 probabilities [N, classes])."""
    return json_response(named(request, name).served.oip_metadata())


@router.get("/models/{name}/ready")
async def oip_model_ready(name: str, request: Request) -> Response:
    return json_response({"name": name, "ready": named(request, name).ready})


@router.post("/models/{name}/infer", responses={code: {"model": schemas.Error} for code in (401, 404, 413, 422, 503)})
async def oip_infer(name: str, request: schemas.InferenceRequest, http: Request) -> Response:
    """Inference on one UINT8 input tensor [N, C, H, W] (any name); the output is FP32 probabilities (and, asked
    for by name, unlike_score and unlike_training)."""
    state = named(http, name)
    tensor = oip_tensor(request, state.served.input_shape())
    names = state.served.output_names()
    for output in request.outputs or []:
        if output.name not in names:
            has = f"one: {names[0]!r}" if len(names) == 1 else ", ".join(map(repr, names))
            raise ApiError(422, f"no output named {output.name!r}; this model has {has}")
    asked = tuple(output.name for output in request.outputs or [])
    return Response(state.served.inference_body(await state.classify(tensor), request.id, asked), media_type=JSON)
