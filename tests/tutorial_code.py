"""The PyTorch Quickstart's code, re-written from the tutorial for tests to compare trainlab against.

Its model, train() and test() as the tutorial writes them: DataLoader over x/255, batch 64, no shuffle,
SGD lr 1e-3, CrossEntropyLoss, backward/step/zero_grad.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# the tutorial's state_dict keys, in order: what a trainlab mlp checkpoint must hold to load into its model
TUTORIAL_KEYS = [
    "linear_relu_stack.0.weight",
    "linear_relu_stack.0.bias",
    "linear_relu_stack.2.weight",
    "linear_relu_stack.2.bias",
    "linear_relu_stack.4.weight",
    "linear_relu_stack.4.bias",
]


class TutorialNeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


def tutorial_loader(split, batch_size=64):
    """What ToTensor() and DataLoader(dataset, batch_size=64) hand the tutorial's loops."""
    return DataLoader(TensorDataset(split.images.float() / 255, split.labels), batch_size=batch_size)


def tutorial_train(dataloader, model, loss_fn, optimizer):
    """The Quickstart's train(); returns the loss of every batch."""
    losses = []
    model.train()
    for X, y in dataloader:
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def tutorial_test(dataloader, model):
    """The Quickstart's test(): accuracy as a fraction, and the predicted classes."""
    model.eval()
    predictions = []
    with torch.no_grad():
        for X, _ in dataloader:
            predictions.append(model(X).argmax(1))
    predicted = torch.cat(predictions)
    return (predicted == dataloader.dataset.tensors[1]).sum().item() / len(predicted), predicted


def train_tutorial_model(data, epochs: int, seed: int = 0):
    torch.manual_seed(seed)
    model = TutorialNeuralNetwork()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(epochs):
        losses += tutorial_train(tutorial_loader(data.train), model, loss_fn, optimizer)
    return model, losses
