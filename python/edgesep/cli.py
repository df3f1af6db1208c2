"""The `edgesep` command: compile | candidates | profile | run | inspect | bench | demo."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .bundle import BundleError
from .ops import ACTIVATION_LAYOUTS


def _shapes(specs: list[str] | None) -> dict[str, list]:
    shapes = {}
    for spec in specs or []:
        name, _, dims = spec.rpartition("=")
        if not name or not dims:
            raise ValueError(f"--input-shape {spec!r}: expected NAME=D0,D1,... (N for the dynamic batch)")
        shapes[name] = [None if d.strip() in ("N", "-1") else int(d) for d in dims.split(",")]
    return shapes


def _compile(a: argparse.Namespace) -> None:
    from .compiler import compile_onnx
    from .report import compression_tables, layer_table
    from .runtime import load

    out = a.output or Path(a.model).with_suffix(".esb")
    calib = np.load(a.calib) if a.calib else None
    labels = np.load(a.labels) if a.labels else None
    costs = None
    if a.cost_table:
        from .compiler.costs import read_cost_table

        costs = read_cost_table(a.cost_table)
    report = compile_onnx(a.model, out, _shapes(a.input_shape), separable=a.separable, sparse_fc=a.sparse_fc,
                          prune=a.prune, slim=a.slim, optimize=a.optimize, calib=calib, labels=labels,
                          max_output_error=a.max_output_error, max_accuracy_drop=a.max_accuracy_drop,
                          max_disagreement=a.max_disagreement, confidence=a.confidence, allocation=a.allocation,
                          **({} if a.check_fraction is None else {"check_fraction": a.check_fraction}),
                          cost_table=costs, num_threads=a.threads or 1, min_speedup=a.min_speedup,
                          progress=sys.stderr.isatty(), layout=a.layout, winograd=not a.no_winograd)
    c = report["cleanup"]
    print(f"{a.model} -> {out}: {report['onnx_nodes']} ONNX nodes, {report['nodes']} steps "
          f"({c['batchnorm_folded']} BatchNorms and {c['affine_folded']} scales folded, "
          f"{c['activations_fused']} activations fused)")
    print(layer_table(load(out, num_threads=1)))
    print(compression_tables(report))


def _candidates(a: argparse.Namespace) -> None:
    from .compiler import candidates

    out = a.output or Path(a.model).with_suffix(".cands.zip")
    n = candidates(a.model, out, _shapes(a.input_shape))
    print(f"{a.model} -> {out}: {n} layer forms; on the device: edgesep profile {Path(out).name} -o costs.json")


def _profile(a: argparse.Namespace) -> None:
    import json

    from .profile import profile

    table = profile(a.candidates, num_threads=a.threads or 1, runs=a.runs,
                    progress=(lambda s: print(f"\r  {s}", end="", file=sys.stderr, flush=True)) if sys.stderr.isatty() else None)
    Path(a.output).write_text(json.dumps(table, indent=1))
    print(f"{a.candidates}: {len(table['seconds'])} layer forms timed ({table['machine']}, {table['isa']}, "
          f"{table['threads']} thread(s)) -> {a.output}; compile with --cost-table {a.output}")


def _run(a: argparse.Namespace) -> None:
    from .runtime import load

    model = load(a.bundle, num_threads=a.threads)
    x = np.load(a.input)
    if isinstance(x, np.lib.npyio.NpzFile):
        x = {k: x[k] for k in x.files}
    y = model.run(x)
    if a.output:
        if isinstance(y, dict):
            np.savez(a.output, **y)
        else:
            np.save(a.output, y)
        print(f"wrote {a.output}")
    else:
        for name, v in (y.items() if isinstance(y, dict) else [(model.outputs[0].name, y)]):
            print(f"{name}: shape {v.shape}\n{v}")


def _inspect(a: argparse.Namespace) -> None:
    from .report import compression_tables, layer_table
    from .runtime import load

    model = load(a.bundle, num_threads=1)
    h = model.header
    src = h.get("source", {})
    print(f"{a.bundle}: bundle v{model.format_version} by {h.get('producer', {}).get('name')} {h.get('producer', {}).get('version')}, "
          f"from {src.get('file')} (opset {src.get('opset')}, {src.get('producer')} {src.get('producer_version')})")
    for kind, infos in (("input", model.inputs), ("output", model.outputs)):
        for i in infos:
            print(f"  {kind} {i.name}: {tuple('N' if d is None else d for d in i.shape)} {i.dtype}")
    print(layer_table(model, a.batch))
    print(compression_tables(h.get("report", {})))


def _bench(a: argparse.Namespace) -> None:
    from .runtime import load
    from .report import median_seconds, table

    model = load(a.bundle, num_threads=a.threads)
    shapes = [tuple(a.batch if d is None else d for d in i.shape) for i in model.inputs]
    xs = [np.random.default_rng(0).standard_normal(s).astype(np.float32) for s in shapes]
    t = median_seconds(lambda: model.run(xs), runs=a.runs)
    rows = [["edgesep", f"{t * 1e3:.3f}", "1.00"]]
    if a.onnx:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = model.num_threads
        sess = ort.InferenceSession(a.onnx, opts, providers=["CPUExecutionProvider"])
        feed = {i.name: x for i, x in zip(sess.get_inputs(), xs)}
        t_ort = median_seconds(lambda: sess.run(None, feed), runs=a.runs)
        rows.append(["onnxruntime", f"{t_ort * 1e3:.3f}", f"{t_ort / t:.2f}"])
    print(f"batch {a.batch}, {model.num_threads} thread(s), kernels {model.kernel_isa}, median of {a.runs} runs")
    print(table(["runtime", "ms", "speed-up of edgesep"], rows, [False, True, True]))
    if a.layers:
        times = model.profile(xs, a.runs)
        layer_rows = [[r["name"], r["op"] + ("+" + r["activation"] if r["activation"] != "none" else ""),
                       "x".join(map(str, r["output"])), f"{1e3 * t:.3f}", f"{100 * t / sum(times):.1f}",
                       f"{r['macs'] / t / 1e9:.1f}" if r["macs"] and t > 0 else ""]
                      for r, t in zip(model.layers(a.batch), times)]
        print("\n" + table(["layer", "op", "output", "ms", "% of run", "GMAC/s"], layer_rows,
                           [False, False, False, True, True, True]))


def _demo(a: argparse.Namespace) -> None:
    from .demo import main

    main(num_threads=a.threads, optimize=not a.dense_only)


def main(argv: list[str] | None = None) -> int:
    from . import __version__, available_isas

    p = argparse.ArgumentParser(prog="edgesep", description="Compile ONNX CNNs into bundles and run them fast on CPUs.")
    p.add_argument("--version", action="version",
                   version=f"edgesep {__version__} (kernels on this CPU: {', '.join(available_isas())})")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compile", help="ONNX model -> bundle (.esb)")
    c.add_argument("model")
    c.add_argument("-o", "--output")
    c.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                   help="fix an input's dims (N keeps the batch dynamic), e.g. input_1=N,240,320,3")
    c.add_argument("--separable", metavar="SPEC",
                   help="split kxk convs into kx1 + 1xk: energy=T (keep T of sigma^2), ratio=R (MACs per layer), "
                        "or auto (budget on --calib)")
    c.add_argument("--sparse-fc", metavar="SPEC",
                   help="sparsify fully-connected layers: S (prune to sparsity S, e.g. 0.9; add ',block=4x1' or "
                        "',block=1x4' to prune in blocks), dict=R (dictionary x sparse codes at R of the MACs), "
                        "or auto (budget on --calib)")
    c.add_argument("--prune", metavar="SPEC",
                   help="structured filter pruning: R (remove the fraction R of the channels of every prunable group "
                        "of layers) or auto (budget on --calib); with --calib the channels whose loss the refit of the next "
                        "layers recovers best go first and those layers are refit by least squares, without it the lowest "
                        "Mean Weight go; add ',score=mean|l1|l2|activation|recon' to choose, ',round=N' to keep a multiple "
                        "of N channels (default 16)")
    c.add_argument("--slim", choices=["auto"],
                   help="approximate slimming, within the budget on --calib: a conv whose output goes only to a pooling "
                        "layer computes the pooled pixels directly, at the pool's stride, refit by least squares (the "
                        "exact merges run on every compile)")
    c.add_argument("--optimize", choices=["auto"],
                   help="plan every compression pass together (pruning, slimming, separable convs, sparse FC) within the budget: "
                        "per layer dense or a faster form, the fastest plan that passes the check (needs --calib and a "
                        "budget); a pass given its own spec above is applied as given")
    c.add_argument("--calib", metavar="X.npy", help="calibration inputs (float32, shaped like the model input; a few "
                                                    "hundred training inputs will do: the budget is checked on a part "
                                                    "no refit sees, with perturbed copies)")
    c.add_argument("--labels", metavar="Y.npy", help="integer labels of the calibration inputs")
    c.add_argument("--max-disagreement", type=float, metavar="D",
                   help="budget: rate of top-1 changes against the original model, a fraction (0.01 = 1%%; no labels)")
    c.add_argument("--max-accuracy-drop", type=float, metavar="D",
                   help="budget: rate of inputs the original gets right and the compressed model wrong (needs --labels)")
    c.add_argument("--max-output-error", type=float, metavar="E",
                   help="budget: relative L2 error of the model output on the check inputs")
    c.add_argument("--check-fraction", type=float, metavar="F",
                   help="the part of --calib held out of every refit to check the budget on (default 0.5; more check "
                        "inputs admit more events under the same bound, fewer are left to fit to)")
    c.add_argument("--confidence", type=float, default=0.9,
                   help="the top-1 budgets hold as a one-sided upper bound at this confidence (default 0.9)")
    c.add_argument("--allocation", choices=["greedy", "threshold"], default="greedy",
                   help="how the budget is shared: least error per saved ms (default) or one sensitivity threshold")
    c.add_argument("--cost-table", metavar="COSTS.json",
                   help="layer times measured on the target device (edgesep candidates + edgesep profile)")
    c.add_argument("--threads", type=int, help="threads for the timings that decide each layer (default 1)")
    c.add_argument("--min-speedup", type=float, default=1.0,
                   help="replace a layer only if its measured new form beats the dense layer by more (default 1.0)")
    c.add_argument("--layout", choices=ACTIVATION_LAYOUTS, default="nhwc",
                   help="activation layout: nhwc (the conv core's, default) or nchw (the first core's, for comparison)")
    c.add_argument("--no-winograd", action="store_true",
                   help="run 3x3 convs directly (Winograd, where chosen, is 1.2-2.9x faster; its weights take 16/9 to 4x the bytes)")
    c.set_defaults(fn=_compile)
    k = sub.add_parser("candidates", help="write the layer forms the planner times, to profile on the device")
    k.add_argument("model")
    k.add_argument("-o", "--output")
    k.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    k.set_defaults(fn=_candidates)
    f = sub.add_parser("profile", help="time the candidate layer forms on this device (for compile --cost-table)")
    f.add_argument("candidates", help="the zip written by edgesep candidates")
    f.add_argument("-o", "--output", required=True)
    f.add_argument("--threads", type=int)
    f.add_argument("--runs", type=int, default=15)
    f.set_defaults(fn=_profile)
    r = sub.add_parser("run", help="run a bundle on an .npy (or .npz by input name) input")
    r.add_argument("bundle")
    r.add_argument("input")
    r.add_argument("-o", "--output", help=".npy to write (.npz for several outputs)")
    r.add_argument("--threads", type=int)
    r.set_defaults(fn=_run)
    i = sub.add_parser("inspect", help="per-layer table of a bundle: op, shapes, params, MACs, bytes")
    i.add_argument("bundle")
    i.add_argument("--batch", type=int, default=1)
    i.set_defaults(fn=_inspect)
    b = sub.add_parser("bench", help="time a bundle (and the ONNX model on onnxruntime, with --onnx)")
    b.add_argument("bundle")
    b.add_argument("--onnx")
    b.add_argument("--threads", type=int)
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--runs", type=int, default=50)
    b.add_argument("--layers", action="store_true", help="also time each layer (median per step)")
    b.set_defaults(fn=_bench)
    d = sub.add_parser("demo", help="compile the built-in digits CNN (dense and --optimize auto) and run it on real "
                                     "held-out images, beside onnxruntime")
    d.add_argument("--threads", type=int)
    d.add_argument("--dense-only", action="store_true", help="skip the --optimize auto compile (half a minute or so)")
    d.set_defaults(fn=_demo)
    a = p.parse_args(argv)
    try:
        a.fn(a)
    except (BundleError, ValueError, TypeError, OSError, MemoryError) as e:
        print(f"edgesep {a.cmd}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
