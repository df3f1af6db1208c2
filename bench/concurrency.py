"""Throughput of several Models in one process: runs per second of one Model called from one thread
against four Models called from four threads at once (and two more arrangements), in one run.

    python bench/concurrency.py                       # the demo CNN and squeezenet1_1, 3 s each
    python bench/concurrency.py --models demo --seconds 5 --write   # ... rewrite docs/benchmarks.md

The Models share the process's workers (csrc/runtime/thread_pool.h, ThreadPool::Claim): a run takes
them when no other run is going on, else it runs on its caller's thread. Before, each Model kept its own
spinning pool, and four Models from four threads ran 563 runs/s together against 2,353 for one.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from compare import compiled
from docs_section import write_section

import edgesep

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _isa() -> str:
    return edgesep.available_isas()[-1]


def throughput(models: list, callers: int, x: np.ndarray, seconds: float) -> float:
    """Runs per second of `callers` threads, thread i calling models[i % len(models)] in a loop."""
    for m in models:
        m.run(x)  # warm: plans built
    stop = time.monotonic() + seconds
    counts = [0] * callers

    def loop(i: int) -> None:
        m = models[i % len(models)]
        while time.monotonic() < stop:
            m.run(x)
            counts[i] += 1
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["demo", "squeezenet1_1"])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--write", action="store_true", help="rewrite the section in docs/benchmarks.md")
    a = p.parse_args()
    cores = edgesep._core.physical_cores()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, _, bundle, shape in compiled(a.models, Path(tmp)):
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            one = throughput([edgesep.load(bundle)], 1, x, a.seconds)
            four = throughput([edgesep.load(bundle) for _ in range(4)], 4, x, a.seconds)
            four_single = throughput([edgesep.load(bundle, num_threads=1) for _ in range(4)], 4, x, a.seconds)
            shared = throughput([edgesep.load(bundle)], 4, x, a.seconds)
            rows.append(f"| {name} | {one:.0f} | {four:.0f} ({four / one:.2f}) | {four_single:.0f} ({four_single / one:.2f}) "
                        f"| {shared:.0f} ({shared / one:.2f}) |")
            print(rows[-1], flush=True)
    text = "\n".join([
        f"Runs per second, batch 1, {platform.machine()} ({_isa()}) with {cores} physical cores: Python threads calling "
        f"`Model.run` in a loop for {a.seconds:.0f} s each (python bench/concurrency.py); in brackets the ratio to "
        "one Model called from one thread, measured in the same run.",
        "",
        f"| model | 1 Model, 1 thread ({cores} workers) | 4 Models, 4 threads | 4 Models of 1 thread, 4 threads "
        "| 1 Model, 4 threads |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(text)
    if a.write:
        write_section(RESULTS, "concurrency", text)


if __name__ == "__main__":
    main()
