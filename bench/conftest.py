"""Benchmarks: `python -m pytest bench` (pytest-benchmark; not part of the test run). Each group holds
edgesep and onnxruntime on the same model and thread count, so the table reads as a comparison."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def bundle_of(tmp_path_factory):
    """bundle_of(onnx_path) -> compiled bundle (once per session)."""
    from edgesep.compiler import compile_onnx

    cache: dict[Path, Path] = {}

    def make(onnx_path: Path) -> Path:
        if onnx_path not in cache:
            cache[onnx_path] = tmp_path_factory.mktemp("bundles") / (onnx_path.stem + ".esb")
            compile_onnx(onnx_path, cache[onnx_path])
        return cache[onnx_path]
    return make


def random_input(shape) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)
