"""The peer for benchmarks/serve.py: the FastAPI endpoint people write by hand for the tutorial's model.

It decodes the PNG with Pillow, applies the tutorial's ToTensor, runs the tutorial's NeuralNetwork (weights
from a plain state_dict, e.g. `trainlab export RUN --format state-dict --out model.pth`) and returns JSON.
No batching, no limits, no page. Run:

    python benchmarks/plain_fastapi.py model.pth --port 8001
"""

from __future__ import annotations

import argparse
import io

import torch
import uvicorn
from fastapi import FastAPI, Request
from PIL import Image
from torch import nn
from torchvision.transforms import ToTensor

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class NeuralNetwork(nn.Module):
    """The tutorial's model."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


def build_app(weights: str) -> FastAPI:
    model = NeuralNetwork()
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    to_tensor = ToTensor()
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request):
        image = Image.open(io.BytesIO(await request.body())).convert("L").resize((28, 28))
        with torch.no_grad():
            probabilities = torch.softmax(model(to_tensor(image).unsqueeze(0)), dim=1)[0]
        index = int(probabilities.argmax())
        return {"label": CLASSES[index], "index": index, "probability": float(probabilities[index])}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="the tutorial model's state_dict (model.pth)")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    uvicorn.run(build_app(args.weights), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
