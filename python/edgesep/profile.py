"""`edgesep profile`: times the candidate layer forms the planner chooses among (a zip of small bundles
written by `edgesep candidates`) on this device, for `edgesep compile --cost-table`. Needs only numpy and
the runtime, not onnx."""
from __future__ import annotations

import platform
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .ops import is_layout_change
from .runtime import Model, load


def profile(candidates: str | Path, num_threads: int = 1, runs: int = 15, progress=None) -> dict:
    """Median seconds of each bundle in the zip, by name (its signature), with where they were measured."""
    seconds, isa = {}, None
    with zipfile.ZipFile(candidates) as z:
        names = [n for n in z.namelist() if n.endswith(".esb") and "/" not in n]
        for i, name in enumerate(names):
            model = load(z.read(name), num_threads=num_threads)
            x = np.random.default_rng(0).standard_normal(model.inputs[0].shape).astype(np.float32)
            seconds[name[:-4]] = chain_seconds(model, x, runs)
            isa = model.kernel_isa
            model.close()
            if progress:
                progress(f"{i + 1}/{len(names)}")
    return {"seconds": seconds, "machine": platform.machine(), "platform": platform.platform(),
            "threads": num_threads, "isa": isa, "edgesep": __version__}


def chain_seconds(model: Model, x: np.ndarray, runs: int = 15) -> float:
    """The time of a candidate's layers (a bundle of one layer or a few) as they run inside a whole model:
    the sum of its steps' median times over `runs` runs (Model.profile), leaving out what a whole model
    pays once and not per layer: a run's own cost (the copies into and out of the runtime, as large as
    the layer's input and output) and the layout changes at the bundle's input and output."""
    for _ in range(3):  # (warm-up)
        model.run(x)
    steps = list(zip(model.layers(x.shape[0]), model.profile(x, runs)))
    while steps and is_layout_change(steps[0][0]):
        steps.pop(0)
    while steps and is_layout_change(steps[-1][0]):
        steps.pop()
    return float(sum(t for _, t in steps))
