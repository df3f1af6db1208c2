"""Latency of several runtimes on one model, measured interleaved: each runtime in its own process (two
thread pools in one process fight over the cores: onnxruntime's idle workers slowed ours 6x there),
timed in rounds of 5 runs after 30 ms of untimed warm-up runs, the rounds alternating between the
runtimes and every other runtime's process stopped meanwhile (onnxruntime's workers spin for tens of ms
after a run, and a process of ours beside them ran 2 ms where it ran 0.09 ms alone). A change in the
machine's speed then hits every runtime alike.

A runtime is named with its model file: ("edgesep", bundle), ("onnxruntime", onnx), ("openvino", onnx),
("ncnn", param file from pnnx, with its .bin beside it); all get the same input (seed 0). Two builds of
edgesep compare as "edgesep" and "edgesep:<label>" with the second's package on its own PYTHONPATH
(`envs`).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


#: The timed runs per runtime of the accuracy studies' speed-ups (60 rounds of 5). At 60 (12 rounds) two
#: VGG-style MNIST plans measured 2.32x and 4.77x our dense model in one run of bench/budget_study.py and
#: 3.11x and 3.41x, twice each, timed again a few hours later: a round of 5 runs of a 0.2 ms model lasts 1 ms, and a few
#: rounds caught by a busy moment move the median.
STUDY_RUNS = 300


def _runner(runtime: str, path: str, threads: int, x):
    """A function running one inference of `runtime` on x."""
    if runtime.split(":")[0] == "edgesep":
        import edgesep

        model = edgesep.load(path, num_threads=threads)
        return lambda: model.run(x)
    if runtime == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        return lambda: sess.run(None, feed)
    if runtime == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                         "INFERENCE_PRECISION_HINT": "f32",
                                                         "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        return lambda: request.infer([x])
    if runtime == "ncnn":
        import ncnn

        net = ncnn.Net()
        net.opt.num_threads = threads
        net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
        net.opt.use_bf16_storage = False
        net.load_param(path)
        net.load_model(path.removesuffix(".param") + ".bin")
        mat = ncnn.Mat(x[0])  # batch 1

        def run():
            ex = net.create_extractor()
            ex.input("in0", mat)
            return ex.extract("out0")
        return run
    raise ValueError(f"unknown runtime {runtime}")


def serve(runtime: str, path: str, threads: int, shape: list[int]) -> None:
    """A timing worker: for each line `k` on stdin, 30 ms of warm-up runs, then k timed runs, whose
    seconds it prints as one JSON list."""
    import numpy as np

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    run = _runner(runtime, path, threads, x)
    run()
    print("ready", flush=True)
    for line in sys.stdin:
        t_end = time.perf_counter() + 0.03
        while time.perf_counter() < t_end:
            run()
        times = []
        for _ in range(int(line)):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)


def latency(runtimes: dict[str, str], threads: int, shape: list[int], runs: int,
            envs: dict[str, dict[str, str]] | None = None) -> dict[str, float]:
    """Median milliseconds per runtime (name -> its model file) over `runs` interleaved runs each; envs:
    extra environment variables of some runtimes' processes."""
    import numpy as np

    envs = envs or {}
    procs = {rt: subprocess.Popen([sys.executable, __file__, rt, path, str(threads), json.dumps(shape)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, **envs.get(rt, {})})
             for rt, path in runtimes.items()}
    try:
        for rt, p in procs.items():
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{rt} failed to load {runtimes[rt]}")
        times: dict[str, list[float]] = {rt: [] for rt in procs}
        order = list(procs)
        for r in range(max(1, runs // 5)):
            for rt in order[r % len(order):] + order[:r % len(order)]:
                for other, p in procs.items():
                    os.kill(p.pid, signal.SIGCONT if other == rt else signal.SIGSTOP)
                procs[rt].stdin.write("5\n")
                procs[rt].stdin.flush()
                times[rt] += json.loads(procs[rt].stdout.readline())
        return {rt: 1e3 * float(np.median(v)) for rt, v in times.items()}
    finally:
        for p in procs.values():
            os.kill(p.pid, signal.SIGCONT)
            p.stdin.close()
            p.wait()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
