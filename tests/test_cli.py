"""The `edgesep` command: compile, inspect, run, bench, demo, and its error exits."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnx
import pytest
from test_ops import CASES

from edgesep.bundle import FORMAT_VERSION
from edgesep.cli import main


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(CASES["activations"][0], path)
    return path


def test_compile_inspect_run_bench(onnx_file, tmp_path, capsys):
    esb = tmp_path / "m.esb"
    assert main(["compile", str(onnx_file), "-o", str(esb)]) == 0
    out = capsys.readouterr().out
    assert "6 activations fused" in out and "Conv+leaky_relu" in out
    assert main(["inspect", str(esb)]) == 0
    out = capsys.readouterr().out
    assert "input x: ('N', 3, 6, 5)" in out and "MACs" in out and "total" in out
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(esb), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").shape == (2, 4, 6, 5)
    assert main(["bench", str(esb), "--onnx", str(onnx_file), "--runs", "3", "--batch", "2", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "% of run" in out and "Conv+leaky_relu" in out


def test_timed_calls_take_turns():
    from edgesep.report import interleaved_seconds

    calls = []
    seconds = interleaved_seconds([lambda: calls.append("a"), lambda: calls.append("b")], rounds=3, runs=2, warmup=2)
    assert calls == ["a", "a", "b", "b"] + (["a"] * 3 + ["b"] * 3) * 3  # the warm-up, then turns: one untimed call, two timed
    assert len(seconds) == 2


def test_errors_exit_nonzero_with_a_message(tmp_path, capsys):
    bad = tmp_path / "bad.esb"
    bad.write_bytes(b"EDGESEP\0" + b"\xff" * 40)
    assert main(["inspect", str(bad)]) == 1
    assert "edgesep inspect: error:" in capsys.readouterr().err
    assert main(["compile", str(tmp_path / "missing.onnx")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_demo_entry_point():
    exe = shutil.which("edgesep")
    assert exe, "the edgesep console script is not installed"
    out = subprocess.run([exe, "demo", "--threads", "1", "--dense-only"], check=True, capture_output=True, text=True).stdout
    assert "held-out accuracy" in out and "onnxruntime" in out and "--optimize auto" not in out


@pytest.mark.usefixtures("mac_costs")
def test_demo_reaches_the_trained_accuracy():
    from edgesep.demo import main as demo

    lines = []
    r = demo(num_threads=1, out=lines.append)
    # The shipped model scores 97.7% on its 1000 held-out images; the compiled bundle must agree with
    # onnxruntime image for image.
    assert r["accuracy"] == r["ort_accuracy"] and r["accuracy"] > 0.95
    # The optimized bundle: planned within 1 point on training images, checked here on the held-out ones.
    # The budget is a 90%-confidence bound (met in 9 of 10 calibrations or more, docs/planner.md), and the
    # plan depends on this machine's timings: a unit test cannot hold it at its edge; 2 points it can.
    opt = r["optimized"]
    assert opt["bound"] <= 0.01 and opt["accuracy"] >= r["accuracy"] - 0.02
    assert {"latency_ms", "ort_latency_ms"} <= r.keys() and "latency_ms" in opt  # (all three rows timed)
    assert opt["bytes"] < r["bytes"]
    assert any("--optimize auto" in line and "held-out accuracy" not in line for line in lines)


def test_compile_sparse_fc_reports_per_layer_and_inspect_shows_it(tmp_path, capsys):
    from edgesep.demo import _data

    path, images, labels = _data()
    np.save(tmp_path / "x.npy", images[:200])
    esb = tmp_path / "s.esb"
    assert main(["compile", str(path), "-o", str(esb), "--sparse-fc", "0.9", "--calib", str(tmp_path / "x.npy"),
                 "--min-speedup", "0"]) == 0
    out = capsys.readouterr().out
    assert "sparse-fc (0.9):" in out and "magnitude 0.9" in out and "output err" in out and "SparseFc+relu" in out
    assert main(["inspect", str(esb)]) == 0
    out = capsys.readouterr().out
    assert f"bundle v{FORMAT_VERSION}" in out and "magnitude 0.9" in out and "calibration (200 inputs)" in out
    assert main(["compile", str(path), "-o", str(esb), "--sparse-fc", "0.9,block=3x3"]) == 1
    assert "block=1x1, block=1x4 or block=4x1" in capsys.readouterr().err
