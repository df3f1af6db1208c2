"""Text tables for the command line: a model's per-layer table and timing helpers."""
from __future__ import annotations

import time
from typing import Callable, Sequence

from .runtime import Model


def table(headers: Sequence[str], rows: Sequence[Sequence], right: Sequence[bool] | None = None) -> str:
    """A plain text table; `right` marks right-aligned (numeric) columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = right or [False] * len(headers)
    line = lambda r: "  ".join(c.rjust(w) if a else c.ljust(w) for c, w, a in zip(r, widths, right)).rstrip()
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def _shape(s: Sequence[int]) -> str:
    return "x".join(str(d) for d in s)


def layer_table(model: Model, batch: int = 1) -> str:
    """Per layer: name, op (+ fused activation; "nhwc", "winograd"), input and output shapes as laid out in
    memory, params, MACs (of the direct conv, for Winograd too), weight bytes."""
    rows, total = [], [0, 0, 0]
    for r in model.layers(batch):
        op = r["op"] + ("+" + r["activation"] if r["activation"] != "none" else "")
        op += " " + ("winograd" if r["winograd"] else r["layout"]) if r["layout"] == "nhwc" else ""
        rows.append([r["name"], op, " ".join(_shape(s) for s in r["inputs"]), _shape(r["output"]),
                     f"{r['params']:,}", f"{r['macs']:,}", f"{r['bytes']:,}"])
        total = [total[0] + r["params"], total[1] + r["macs"], total[2] + r["bytes"]]
    rows.append(["total", "", "", "", f"{total[0]:,}", f"{total[1]:,}", f"{total[2]:,}"])
    return table(["layer", "op", "input", "output", "params", "MACs", "bytes"], rows,
                 [False, False, False, False, True, True, True])


def separable_table(report: dict) -> str:
    """The separable pass's choices: per conv, shape, rank, MACs before/after, weight error, measured times."""
    rows = []
    for r in report["separable"]:
        if "rank" in r:
            rows.append([r["layer"], r["shape"], f"{r['rank']}/{r['full_rank']}", f"{r['dense_macs']:,}",
                         f"{r['pair_macs']:,}", f"{r['dense_macs'] / r['pair_macs']:.1f}x", f"{r['weight_error']:.3f}",
                         f"{r['dense_ms']:.3f}", f"{r['pair_ms']:.3f}", f"{r['dense_ms'] / r['pair_ms']:.2f}x",
                         r["status"] + (f" ({r['form']})" if r["status"] == "separable" else "")])
        else:
            rows.append([r["layer"], r["shape"], "", f"{r.get('dense_macs', 0):,}", "", "", "", "", "", "", r["status"]])
    text = table(["layer", "shape", "rank", "MACs dense", "MACs pair", "MAC ratio", "weight err", "dense ms",
                  "pair ms", "speed-up", "result"], rows, [False, False, True, True, True, True, True, True, True, True, False])
    return f"separable ({report.get('separable_spec')}):\n" + text


def sparse_table(report: dict) -> str:
    """The sparse-FC pass's choices: per Fc layer, method, block, MACs and bytes before/after, weight
    error, measured times."""
    rows = []
    for r in report["sparse_fc"]:
        if "method" in r:
            rows.append([r["layer"], r["shape"], r["method"], r.get("refit", ""), r["block"], f"{r['dense_macs']:,}",
                         f"{r['sparse_macs']:,}",
                         f"{r['dense_bytes']:,}", f"{r['sparse_bytes']:,}", f"{r['dense_bytes'] / r['sparse_bytes']:.1f}x",
                         f"{r.get('output_error', r['weight_error']):.3f}", f"{r['dense_ms']:.3f}", f"{r['sparse_ms']:.3f}",
                         f"{r['dense_ms'] / r['sparse_ms']:.2f}x", r["status"]])
        else:
            rows.append([r["layer"], r["shape"], "", "", "", f"{r['dense_macs']:,}", "", f"{r['dense_bytes']:,}", "", "", "",
                         "", "", "", r["status"]])
    # The error column: the layer's relative output error on the calibration data where there was
    # some (a refit moves the weights far to keep the output), else the relative weight error.
    err = "output err" if any("output_error" in r for r in report["sparse_fc"]) else "weight err"
    return f"sparse-fc ({report.get('sparse_fc_spec')}):\n" + table(
        ["layer", "shape", "method", "refit", "block", "MACs dense", "MACs sparse", "bytes dense", "bytes sparse", "shrink",
         err, "dense ms", "sparse ms", "speed-up", "result"], rows,
        [False, False, False, False, False, True, True, True, True, True, True, True, True, True, False])


def prune_table(pr: dict) -> str:
    """The pruning pass: per channel group what was kept, per layer the MACs and bytes it lost."""
    how = f"{pr['ratio']:g} of each group's channels"
    lines = [f"filter pruning ({how}, score {pr['score']}"
             f"{', consumers refit on calibration data' if pr['refit'] else ', no refit (no calibration data)'}): "
             f"MACs {pr['macs_before'] / 1e6:.2f}M -> {pr['macs_after'] / 1e6:.2f}M "
             f"({pr['macs_before'] / max(pr['macs_after'], 1):.2f}x fewer)"]
    for grp in pr["groups"]:
        lines.append(f"  {grp['group'][:48]:48} {grp['kept']:5d}/{grp['channels']:<5d} {grp['status']}")
    for r in pr["layers"]:
        lines.append(f"  {r['name'][:48]:48} {r['op']:8} MACs {r['macs_before'] / 1e6:8.2f}M -> {r['macs_after'] / 1e6:8.2f}M"
                     f"  bytes {r['bytes_before'] / 1e3:8.1f}K -> {r['bytes_after'] / 1e3:8.1f}K")
    return "\n".join(lines)


def plan_table(pl: dict) -> str:
    """The planner's choices: per unit the choice, its measured time against the dense form, its
    sensitivity and share of the budget; then the check that accepted the plan."""
    b, f = pl["budget"], pl["final"]
    rows = [[u["pass"], u["unit"][:40], u["choice"], f"{u['dense_ms']:.3f}", f"{u['ms']:.3f}",
             f"{u['dense_ms'] / u['ms']:.2f}x" if u["ms"] > 0 else "", f"{u['signal']:.2e}", f"{u['share']:.0%}"]
            for u in pl["units"]]
    what = {"disagreement": "top-1 changes", "accuracy": "inputs turned wrong", "output": "output error"}[b["kind"]]
    head = (f"plan (--optimize over {', '.join(pl['passes'])}; {pl['allocation']} allocation, plan {pl['chosen']} of "
            f"{pl['plans'] - 1}; layer times: {pl['times_measured']} measured here, {pl['times_looked_up']} from the cost table)")
    if b["kind"] == "output":
        check = f"output error {f['signal']:.4f} <= {b['limit']:g}"
    else:
        check = (f"{what} {f['events']}/{f['inputs']} = {f['rate']:.2%}, upper bound {f['bound']:.2%} at "
                 f"{b['confidence']:.0%} confidence <= budget {b['limit']:.2%}")
    foot = (f"checked on {pl['checked_inputs']} calibration inputs no refit saw + {pl['check_copies']} perturbed copies "
            f"each: {check}; planned layers {pl['dense_ms']:.3f} -> {pl['planned_ms']:.3f} ms; "
            + (f"whole model measured {m['dense']:.3f} -> {m['plan']:.3f} ms (the fastest of the last plans passed); "
               if (m := pl.get("measured_ms")) else "")
            + f"MACs {pl['macs_before'] / 1e6:.2f}M -> {pl['macs_after'] / 1e6:.2f}M")
    return head + ":\n" + table(["pass", "unit", "choice", "dense ms", "ms", "speed-up", "signal", "share"], rows,
                                [False, False, False, True, True, True, True, True]) + "\n" + foot


def compression_tables(report: dict) -> str:
    """What the compression passes of a compile report chose, and the calibration result ("" if none ran)."""
    parts = []
    if "prune" in report:
        parts.append(prune_table(report["prune"]))
    if "separable" in report:
        parts.append(separable_table(report))
    if "sparse_fc" in report:
        parts.append(sparse_table(report))
    if "plan" in report:
        parts.append(plan_table(report["plan"]))
    cal = report.get("calibration")
    if cal:
        line = f"calibration ({cal['samples']} inputs): output error {cal['output_error']:.4f}"
        if "accuracy_before" in cal:
            line += f", top-1 accuracy {cal['accuracy_before']:.2%} -> {cal['accuracy_after']:.2%}"
        parts.append(line)
    return "".join("\n" + p for p in parts)


def median_seconds(fn: Callable[[], object], runs: int = 20, warmup: int = 3) -> float:
    """Median wall time of fn() over `runs` calls after `warmup` calls (at least one)."""
    return interleaved_seconds([fn], rounds=1, runs=runs, warmup=max(warmup - 1, 0))[0]


def interleaved_seconds(fns: list[Callable[[], object]], rounds: int = 10, runs: int = 3, warmup: int = 2) -> list[float]:
    """Median wall time of each fn() over rounds x runs calls, after `warmup` calls each: the fns take
    turns, `runs` timed calls a turn after one untimed call (the others' turns have taken the caches; a
    model runs warm where it is deployed), so that a change in the machine's speed (another process, the
    clock) falls on all of them alike: figures to compare with each other."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, t in zip(fns, times):
            fn()
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                t.append(time.perf_counter() - t0)
    return [sorted(t)[len(t) // 2] for t in times]
