"""The Open Inference Protocol's input tensor: one UINT8 [N, C, H, W] tensor of an infer request, checked
whole before it becomes a torch tensor, so that every malformed tensor is a 422 naming its problem."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from trainlab.serve.errors import ApiError
from trainlab.serve.schemas import InferenceRequest, InferenceTensor


def nested_layout(data: list) -> tuple[list[int], list, set[type]]:
    """The shape of nested lists, their values flattened row-major and the values' types (an empty shape for
    ragged nesting), walked level by level rather than recursively."""
    shape = [len(data)]
    level = data
    while True:
        types = set(map(type, level))
        if list not in types:
            return shape, level, types
        lengths = set(map(len, level)) if types == {list} else set()
        if len(lengths) != 1:  # lists beside numbers, or lists of different lengths
            return [], level, types
        shape.append(lengths.pop())
        level = list(itertools.chain.from_iterable(level))


def tensor_values(tensor: InferenceTensor) -> np.ndarray:
    """The tensor's data as one flat array of numbers, given flat or nested exactly as its shape says."""
    layout, values, types = nested_layout(tensor.data)
    if bool in types:  # JSON true and false would pass as 1 and 0 beside numbers
        raise ApiError(422, f"input {tensor.name!r}: data holds true or false; UINT8 pixels are numbers 0-255")
    if not layout or not types <= {int, float}:
        raise ApiError(422, f"input {tensor.name!r}: data must be numbers (flat or nested lists)")
    if len(layout) > 1 and layout != list(tensor.shape):
        raise ApiError(
            422, f"input {tensor.name!r}: the nested data has shape {layout}, not its shape {list(tensor.shape)}"
        )
    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer too large for a float
        raise ApiError(422, f"input {tensor.name!r}: UINT8 values are whole numbers from 0 to 255") from None


def oip_tensor(request: InferenceRequest, shape: tuple[int, int, int]) -> torch.Tensor:
    """The one UINT8 input of an OIP request as a (N, C, H, W) tensor, checked against the model's input."""
    expected = "[N, " + ", ".join(map(str, shape)) + "]"
    if len(request.inputs) != 1:
        raise ApiError(422, f"send exactly one input tensor (UINT8 {expected}), got {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.datatype != "UINT8":
        raise ApiError(422, f"input {tensor.name!r} is {tensor.datatype}; send UINT8 pixels 0-255, shape {expected}")
    if len(tensor.shape) != 4 or tuple(tensor.shape[1:]) != shape or tensor.shape[0] < 1:
        raise ApiError(422, f"input {tensor.name!r} has shape {list(tensor.shape)}; this model takes {expected}")
    values = tensor_values(tensor)
    needed = math.prod(tensor.shape)  # Python integers: a shape such as [2**60 + 1, 1, 28, 28] cannot wrap around
    if values.size != needed:
        raise ApiError(
            422, f"input {tensor.name!r}: shape {list(tensor.shape)} needs {needed} values, got {values.size}"
        )
    if values.size and (values.min() < 0 or values.max() > 255 or not np.all(values == np.rint(values))):
        raise ApiError(422, f"input {tensor.name!r}: UINT8 values are whole numbers from 0 to 255")
    return torch.from_numpy(values.astype(np.uint8).reshape(tensor.shape))
