"""`edgesep profile`: times the candidate layer forms the planner chooses among (a zip of small bundles
written by `edgesep candidates`) on this device, for `edgesep compile --cost-table`. Needs only numpy and
the runtime, not onnx."""
from __future__ import annotations

import platform
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .report import median_seconds
from .runtime import load


def profile(candidates: str | Path, num_threads: int = 1, runs: int = 15, progress=None) -> dict:
    """Median seconds of each bundle in the zip, by name (its signature), with where they were measured."""
    seconds, isa = {}, None
    with zipfile.ZipFile(candidates) as z:
        names = [n for n in z.namelist() if n.endswith(".esb") and "/" not in n]
        for i, name in enumerate(names):
            model = load(z.read(name), num_threads=num_threads)
            x = np.random.default_rng(0).standard_normal(model.inputs[0].shape).astype(np.float32)
            seconds[name[:-4]] = median_seconds(lambda: model.run(x), runs=runs, warmup=3)
            isa = model.kernel_isa
            model.close()
            if progress:
                progress(f"{i + 1}/{len(names)}")
    return {"seconds": seconds, "machine": platform.machine(), "platform": platform.platform(),
            "threads": num_threads, "isa": isa, "edgesep": __version__}
