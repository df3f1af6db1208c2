"""How long does `--optimize auto` take on a ResNet-18-sized model? (compiler/plan.py, compiler/cache.py)

ResNet-18 at 224 x 224 (tests/zoo.py: torchvision's layer structure, seeded random weights and BatchNorm
statistics; no pre-trained weights install offline), calibrated on N random 224 x 224 crops of
scikit-image's sample photographs, planned over every pass (pruning, separable convs, sparse FC) with
`--max-output-error 0.05`: with these weights every plan of the sequence passes that budget, so the walk
checks the whole sequence, the most a plan can cost. Layer times measured here (no cost table), with as
many threads as given. Reports the phases: the latency table, the sensitivity table, the check.

    python bench/plan_time.py [--calib 40 200] [--threads 2] [--write]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from docs_section import write_section
from prune_accuracy import cpu

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
DOC = ROOT / "docs" / "planner.md"


def crops(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """n random size x size crops of scikit-image's colour sample photographs, normalised like ImageNet
    inputs, [n, 3, size, size] float32."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = photos[i % len(photos)]
        y, x = rng.integers(0, im.shape[0] - size + 1), rng.integers(0, im.shape[1] - size + 1)
        out.append(im[y:y + size, x:x + size].transpose(2, 0, 1))
    mean, std = np.array([0.485, 0.456, 0.406])[:, None, None], np.array([0.229, 0.224, 0.225])[:, None, None]
    return ((np.stack(out) / 255.0 - mean) / std).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calib", type=int, nargs="+", default=[40, 200])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    import zoo
    from edgesep.compiler import compile_onnx

    src = zoo.onnx_path("resnet18")
    rows = [f"ResNet-18 at 224 x 224, x86-64 {cpu()}, {a.threads} threads (`python bench/plan_time.py`); "
            "seconds per phase of `--optimize auto --max-output-error 0.05` (every plan passes: the whole "
            "sequence is checked).\n",
            "| calibration images (fit + check) | check inputs with copies | units / options | plans / checked | "
            "latency table s | sensitivity s | check s | compile s | planned / dense time |",
            "|---|---|---|---|---|---|---|---|---|"]
    for n in a.calib:
        calib = crops(n)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            rep = compile_onnx(src, Path(tmp) / "r.esb", optimize="auto", calib=calib, max_output_error=0.05,
                               num_threads=a.threads)
            total = time.perf_counter() - t
        plan, ph = rep["plan"], rep["plan"]["phase_seconds"]
        rows.append(f"| {n} ({n - plan['checked_inputs']} + {plan['checked_inputs']}) | "
                    f"{plan['checked_inputs'] * (plan['check_copies'] + 1)} | {len(plan['units'])} / "
                    f"{sum(len(u['options']) for u in plan['units'])} | {plan['plans'] - 1} / {len(plan['trials'])} | "
                    f"{ph['latency']:.0f} | {ph['sensitivity']:.0f} | {ph['check']:.0f} | {total:.0f} | "
                    f"{plan['planned_ms'] / plan['dense_ms']:.2f} |")
        print(rows[-1], flush=True)
    text = "\n".join(rows)
    print(text)
    if a.write:
        write_section(DOC, "plan-time", text)


if __name__ == "__main__":
    main()
