"""The quickstart tutorial's training workload, as the tutorial writes it: the baseline (A) of benchmarks/run.py.

torchvision FashionMNIST with ToTensor, DataLoader(batch_size=64), the tutorial's NeuralNetwork, SGD lr 1e-3,
CrossEntropyLoss, its train() and test() functions, testing after every epoch. Only the flags are added
(--data-dir, --epochs, --seed, --save), and a seed so that both sides start from the same weights.
It deliberately does not use trainlab.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import ToTensor


class NeuralNetwork(nn.Module):
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
        return self.linear_relu_stack(x)


def train(dataloader, model, loss_fn, optimizer, device):
    size = len(dataloader.dataset)
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        X, y = X.to(device), y.to(device)
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if batch % 100 == 0:
            loss, current = loss.item(), (batch + 1) * len(X)
            print(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")


def test(dataloader, model, loss_fn, device):
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            X, y = X.to(device), y.to(device)
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    test_loss /= num_batches
    correct /= size
    print(f"Test Error: \n Accuracy: {(100 * correct):>0.1f}%, Avg loss: {test_loss:>8f} \n")


def main() -> None:
    parser = argparse.ArgumentParser(description="The quickstart tutorial's loop, for benchmarking.")
    parser.add_argument("--data-dir", default="data", help="torchvision data root (default: ./data)")
    parser.add_argument("--epochs", type=int, default=5, help="number of epochs (default: 5, as in the tutorial)")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed before building the model")
    parser.add_argument("--save", help="write the state_dict here at the end (the tutorial's model.pth)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    training_data = datasets.FashionMNIST(root=args.data_dir, train=True, download=True, transform=ToTensor())
    test_data = datasets.FashionMNIST(root=args.data_dir, train=False, download=True, transform=ToTensor())

    batch_size = 64
    train_dataloader = DataLoader(training_data, batch_size=batch_size)
    test_dataloader = DataLoader(test_data, batch_size=batch_size)

    device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    print(f"Using {device} device")
    torch.manual_seed(args.seed)  # the same initial weights as `trainlab train --seed N`
    model = NeuralNetwork().to(device)
    print(model)

    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    for t in range(args.epochs):
        print(f"Epoch {t + 1}\n-------------------------------")
        train(train_dataloader, model, loss_fn, optimizer, device)
        test(test_dataloader, model, loss_fn, device)
    print("Done!")

    if args.save:
        torch.save(model.state_dict(), args.save)
        print(f"Saved PyTorch Model State to {args.save}")


if __name__ == "__main__":
    main()
