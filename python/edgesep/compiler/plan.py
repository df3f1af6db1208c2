"""The compression planner: one budgeted search for every pass. The passes (compiler/prune.py,
separable.py, sparse_fc.py) say only which units they can change (a channel group, a conv, an Fc
layer), the candidate settings of each, and how to apply a set of choices with its least-squares
refits; this module decides. docs/planner.md states the method and the measurements behind it.

1. Latency table: every option of every unit timed on the runtime (or read from a cost table measured
   on the device), layer by layer, against the unit's dense time. Options that do not run faster are
   dropped. A plan's time is summed over the layers (Costs): a layer two units change (a conv between
   two pruned channel groups) takes both speed-ups.
2. Sensitivity table: every option applied alone, refit on the fit inputs, and scored on SCORED of the
   check inputs (fewer for a large model: scored_inputs) by a continuous signal: the mean KL divergence
   of the model's class probabilities from the original's (classification budgets) or the relative L2
   error of the output. Only the layers the option changed run, fed the original's activations.
3. Allocation: a sequence of plans, ever faster. "greedy": from the dense model, the step (one unit to
   a faster option) with the least signal added per second saved, repeated, with the options a step
   jumps over (between the unit's old and new one) inserted before it. "threshold" (DSD'22's
   T-sensitive rule): for a threshold T, each unit takes its fastest option whose signal is <= T.
4. Check: the plans are checked in the sequence's order, all of a plan's choices applied together (refits
   in order, each layer fitted to the network as already changed), and the first that fails ends the
   search: the last plan that passed is the answer (fixed-sequence testing; a plan saving less than
   STEP of the dense time over the last one checked is skipped). A plan passes when the one-sided
   Clopper-Pearson upper bound (at `confidence`) on its event rate over the check inputs is within the
   budget; the events are the top-1 changes against the original model (disagreement) or the inputs it
   gets right and the plan gets wrong (accuracy drop). Checking in a fixed order and stopping at the
   first failure keeps the chance of accepting any plan beyond the budget at 1 - confidence however
   many are checked; a search that picks among the checked plans (a bisection, then trying other
   steps from the one accepted) does not, and measurably let the budget through (docs/planner.md).
   A plan is run from the last plan passed: only what differs runs, fed that plan's checkpoints.
5. Measure: every plan passed keeps the budget (the walk's guarantee covers them all at once), so the
   last MEASURED of them and the dense model are timed whole, interleaved, and the fastest is the answer
   (layer times summed can miss what a whole model does: a plan planned faster measured slower than
   dense), unless a less compressed one is within MEASURE_MARGIN of it: a plan changes the model more
   than the one before it, which a difference inside the timing's noise does not pay for. Not with a
   cost table: the device's times are not this machine's.

Activations, layer targets and refits are kept in one cache (compiler/cache.py) by what computes them:
a candidate or a plan redoes only the work downstream of what it changes.

The check inputs are the part of the calibration inputs no refit sees (CHECK_FRACTION), plus perturbed
copies of them (shifted by a pixel, with noise): a model is over-confident on its own training inputs,
so a plan that flips none of them flips held-out inputs all the same; on the perturbed copies its
margins are like those on unseen data (measured in docs/planner.md).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .cache import Cache
from .costs import Timer, choose_transforms
from .execute import Stage, model_of, node_shapes, run, time_graphs
from .ir import CompileError, Graph

ALLOCATIONS = ("greedy", "threshold")
KINDS = ("disagreement", "accuracy", "output")
CHECK_FRACTION = 0.5  # of the calibration inputs, held out of every refit to check on (docs/planner.md)
# The check inputs' perturbed copies (docs/planner.md, "The check inputs": where 1-2 point budgets decide,
# a plan's event rate on such copies of training inputs is at or above its rate on held-out inputs).
COPIES = 3  # copies of each check input
NOISE = 0.3  # their Gaussian noise, in standard deviations of the calibration inputs
SHIFT = 2 / 28  # their largest shift, a fraction of each spatial axis (two pixels of an MNIST digit)
SCORED = 128  # the check inputs the sensitivity table scores options on (at most; the check takes all)
SCORED_MACS = 64e9  # ... fewer for a large model, to keep each option's scoring under this many MACs
MIN_SCORED = 32  # ... but never fewer than this (docs/planner.md, "Compile time")
STEP = 0.02  # the least time a checked plan saves over the last one checked, a fraction of the dense time
MEASURED = 4  # the last plans passed, timed whole with the dense model at the end (no cost table): the fastest wins
MEASURE_MARGIN = 0.03  # ... over a less compressed one only when it measured this much faster


@dataclass(frozen=True)
class Budget:
    """What may be lost: the rate of `kind` events ("disagreement": top-1 changes against the original
    model; "accuracy": inputs the original gets right and the plan wrong) bounded at `limit` with
    `confidence`, or ("output") the relative L2 error of the first output at most `limit`."""

    kind: str
    limit: float
    confidence: float = 0.9

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"budget kind {self.kind!r}: expected one of {KINDS}")
        if not (self.limit > 0 and math.isfinite(self.limit)) or (self.kind != "output" and self.limit >= 1):
            raise CompileError(f"the budget must be positive{' and below 1' if self.kind != 'output' else ''}, "
                               f"got {self.limit}")
        if not 0.5 <= self.confidence < 1:
            raise CompileError(f"--confidence must be in [0.5, 1), got {self.confidence}")


def upper_bound(events: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen `events` times in n trials: the rate p at
    which P(Binomial(n, p) <= events) = 1 - confidence."""
    if n <= 0:
        return 1.0
    if events >= n:
        return 1.0

    def cdf(p: float) -> float:
        logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) +
                (n - i) * math.log1p(-p) for i in range(events + 1)]
        top = max(logs)
        return math.exp(top) * sum(math.exp(v - top) for v in logs)

    lo, hi = events / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if mid <= 0 or cdf(mid) > 1 - confidence:
            lo = mid
        else:
            hi = mid
    return hi


def perturbed(x: np.ndarray, copies: int = COPIES, seed: int = 0) -> np.ndarray:
    """`copies` perturbed copies of the inputs x [N, C, ...] (concatenated): each input shifted by up to
    SHIFT of every spatial axis longer than 1 (edges repeated) and given Gaussian noise of NOISE times
    the standard deviation of x."""
    rng = np.random.default_rng(seed)
    axes = [a for a in range(2, x.ndim) if x.shape[a] > 1]
    std = float(x.std()) or 1.0
    out = []
    for _ in range(copies):
        y = x.copy()
        for a in axes:
            most = max(1, round(SHIFT * x.shape[a])) if SHIFT > 0 else 0
            if not most:
                continue
            pad = [(0, 0)] * x.ndim
            pad[a] = (most, most)
            xp = np.pad(y, pad, mode="edge")
            shifts = rng.integers(-most, most + 1, len(x))
            for s in np.unique(shifts):
                rows = shifts == s
                y[rows] = np.take(xp[rows], np.arange(most - s, most - s + x.shape[a]), axis=a)
        out.append(y + rng.normal(0, NOISE * std, y.shape).astype(np.float32))
    return np.ascontiguousarray(np.concatenate(out), np.float32)


def checkpoints(g: Graph) -> list[str]:
    """The values every path from the input to the outputs goes through (a ResNet's block outputs, every
    layer of a chain): each alone holds all a run of the rest of the graph needs."""
    last = {v: i for i, n in enumerate(g.nodes) for v in n.inputs}
    last.update({v: len(g.nodes) for v in g.outputs})
    live, found = {name for name, _ in g.inputs}, []
    for i, n in enumerate(g.nodes):
        live = {v for v in live | {n.output} if last.get(v, -1) > i}
        if live == {n.output}:
            found.append(n.output)
    return found


def _probabilities(y: np.ndarray) -> np.ndarray:
    y = y.astype(np.float64)
    if y.min() >= 0 and np.allclose(y.sum(1), 1, atol=1e-3):  # a softmax output already
        return np.clip(y, 1e-12, 1)
    e = np.exp(y - y.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


class Checks:
    """The inputs every candidate is scored on and a plan is checked on (the check split and its
    perturbed copies), with the original model's outputs on them."""

    def __init__(self, g: Graph, x: np.ndarray, labels: np.ndarray | None, budget: Budget, num_threads: int = 1,
                 copies: int = COPIES, cache: Cache | None = None):
        if budget.kind == "accuracy" and labels is None:
            raise CompileError("--max-accuracy-drop needs --labels")
        self.x = np.concatenate([x, perturbed(x, copies)]) if copies else x
        self.labels = None if labels is None else np.tile(labels, copies + 1)
        self.budget, self.num_threads, self.checked = budget, num_threads, len(x)
        self.unit = g.inputs[0][1][0] or 1  # (the batch a model's export fixes)
        self.cache = cache or Cache()  # (the original model's activations on the inputs, among others)
        shapes, producer, points = node_shapes(g), {n.output: n.name for n in g.nodes}, checkpoints(g)
        kept = sum(math.prod(shapes[producer[v]][1]) if producer[v] in shapes else math.inf for v in points)
        self.keep = 4 * kept * len(self.x) <= self.cache.max_bytes // 4  # (a plan's checkpoints fit the cache well)
        self.reference = self.cache.values(g, g.outputs[:1] + (points if self.keep else []), self.x, num_threads)[0]
        if budget.kind != "output":
            if self.reference.ndim != 2:
                raise CompileError(f"a top-1 budget needs a [N, classes] first output, this model's is "
                                   f"{list(self.reference.shape[1:])}: use --max-output-error")
            self.p_ref = _probabilities(self.reference)

    def outputs(self, g: Graph, base: Graph | None = None, keep: bool = False) -> np.ndarray:
        """g's first output on the check inputs. Given `base`, a graph whose activations on them the cache
        may hold (the original, a plan checked before), with g a changed copy of it: only g's changed nodes
        run, fed base's activations where they read what base computes too. keep: g's checkpoints are
        kept too (where they take at most a quarter of the cache), for a later call with g as the base."""
        if base is None:
            return run(model_of(g, num_threads=self.num_threads), self.x)[0]
        cut, _ = self.cache.changed(g, base)
        self.cache.values(base, cut, self.x, self.num_threads)  # (then g's run starts from them)
        return self.cache.values(g, g.outputs[:1] + (checkpoints(g) if keep and self.keep else []), self.x,
                                 self.num_threads)[0]

    def subset(self, n: int) -> "Checks":
        """These checks on about n of the inputs (whole batches where the model fixes one), evenly spread
        over the originals and their copies; self if there are no more."""
        unit = self.unit
        groups, take = len(self.x) // unit, max(1, n // unit)
        if take >= groups:
            return self
        idx = (np.unique(np.linspace(0, groups - 1, take).round().astype(int))[:, None] * unit + np.arange(unit)).ravel()
        sub = copy.copy(self)
        sub.x, sub.reference = np.ascontiguousarray(self.x[idx]), self.reference[idx]
        sub.labels = None if self.labels is None else self.labels[idx]
        if hasattr(self, "p_ref"):
            sub.p_ref = self.p_ref[idx]
        return sub

    def signal(self, y: np.ndarray) -> float:
        """The search's continuous score of outputs y (lower is better)."""
        if self.budget.kind == "output":
            return float(np.linalg.norm(y - self.reference) / max(np.linalg.norm(self.reference), 1e-30))
        p = _probabilities(y)
        return float(np.mean(np.sum(self.p_ref * (np.log(self.p_ref) - np.log(p)), axis=1)))

    def events(self, y: np.ndarray) -> int:
        top = y.argmax(1)
        if self.budget.kind == "disagreement":
            return int(np.sum(top != self.reference.argmax(1)))
        return int(np.sum((self.reference.argmax(1) == self.labels) & (top != self.labels)))

    def verdict(self, y: np.ndarray) -> dict:
        """Whether outputs y keep the budget, with the figures behind it."""
        signal = self.signal(y)
        if self.budget.kind == "output":
            return {"signal": signal, "ok": signal <= self.budget.limit}
        events, n = self.events(y), len(y)
        bound = upper_bound(events, n, self.budget.confidence)
        return {"signal": signal, "events": events, "inputs": n, "rate": events / n, "bound": bound,
                "ok": bound <= self.budget.limit}


@dataclass
class Option:
    """One candidate form of a unit: the setting its pass applies, and what it costs."""

    setting: object
    label: str
    seconds: float
    signal: float = math.nan
    parts: dict[str, float] | None = None  # seconds per timed part (a layer) of its unit; None: one part

    def times(self, unit: "Unit") -> dict[str, float]:
        return self.parts if self.parts is not None else {unit.key: self.seconds}


@dataclass
class Unit:
    """What a pass can change as one piece (a conv, an Fc layer, a channel group), its dense time and its
    candidate forms."""

    kind: str
    name: str
    dense_seconds: float
    options: list[Option] = field(default_factory=list)
    layers: frozenset = frozenset()  # the layers its options replace: a plan changes no layer by two units
    dense_parts: dict[str, float] | None = None  # dense seconds per timed part (a layer); None: one part
    sides: dict[str, str] | None = None  # per part, the channels it changes: "in" or "out" (a channel group's)
    split: bool = False  # its forms' time goes as input + output channels (a conv split in two), not their product

    def times(self) -> dict[str, float]:
        return self.dense_parts if self.dense_parts is not None else {self.key: self.dense_seconds}

    def rivals(self, units: list["Unit"], plan: "Plan") -> list["Unit"]:
        """The units in plan, other than this one, that replace a layer this one does."""
        return [v for v in units if v.key != self.key and v.key in plan and v.layers & self.layers]

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


class Pass(Protocol):
    """What a compression pass gives the planner."""

    kind: str

    def units(self, g: Graph, timer: Timer) -> list[Unit]:
        """The units of g this pass can change, each option timed by timer(nodes, input_shape)."""

    def apply(self, g: Graph, choices: dict[str, object], stage: Stage) -> None:
        """Applies choices {unit name: setting} to g in place, refitting to the stage's targets (g is
        the stage's graph, or a copy, when called)."""


Plan = dict  # unit key -> option index


def apply_plan(g: Graph, passes: list[Pass], units: dict[str, Unit], plan: Plan, stage: Stage) -> None:
    """Applies a plan to g (a copy of the stage's graph) in place, pass by pass in the given order, each
    pass's refits fitted to the graph as the earlier passes left it: the first pass with choices works on
    `stage` (its activations, targets and memos shared by every plan), the later ones on new stages."""
    for p in passes:
        choices = {units[k].name: units[k].options[i].setting for k, i in plan.items() if units[k].kind == p.kind}
        if choices:
            p.apply(g, choices, stage)
            stage = Stage(g, stage.x, stage.num_threads, stage.cache)


class Costs:
    """A plan's time, summed over the units' timed parts (layers; the rest of the model left out). Each
    unit's timing measured a part with the other units dense; a part that several units of a plan change
    takes the product of their speed-ups (a conv's time goes as its input channels x output channels, so
    a conv between two pruned channel groups takes both), except on a split conv, whose time goes as its
    input + output channels: there the speed-ups of its input and its output channels are averaged."""

    def __init__(self, units):
        self.units = {u.key: u for u in units}
        self.dense: dict[str, float] = {}
        for u in self.units.values():
            self.dense.update(u.times())

    def of(self, plan: Plan, parts=None) -> float:
        """The plan's seconds over `parts` (all by default)."""
        parts = self.dense if parts is None else parts
        ratio = {p: {"in": 1.0, "out": 1.0, "both": 1.0} for p in parts}
        split = set()
        for k, i in plan.items():
            u = self.units[k]
            for p, t in u.options[i].times(u).items():
                if p in ratio and self.dense[p] > 0:
                    ratio[p][(u.sides or {}).get(p, "both")] *= t / self.dense[p]
                    if u.split:
                        split.add(p)
        return sum(self.dense[p] * r["both"] * ((r["in"] + r["out"]) / 2 if p in split else r["in"] * r["out"])
                   for p, r in ratio.items())


def _signal(u: Unit, plan: Plan) -> float:
    return u.options[plan[u.key]].signal if u.key in plan else 0.0


def _steps(units: list[Unit], plan: Plan, costs: Costs) -> list[tuple[float, str, int]]:
    """Every single step from plan (one unit to a faster option, its rivals back to dense): (signal added
    per second saved, unit key, option index)."""
    steps = []
    for u in units:
        rivals = u.rivals(units, plan)
        base = {k: i for k, i in plan.items() if k != u.key and all(k != v.key for v in rivals)}
        parts = set(u.times()).union(*(v.times() for v in rivals))
        now = costs.of(plan, parts)
        s0 = _signal(u, plan) + sum(_signal(v, plan) for v in rivals)
        for i, o in enumerate(u.options):
            if i == plan.get(u.key) or not math.isfinite(o.signal):
                continue
            saved = now - costs.of({**base, u.key: i}, parts)
            if saved > 0:
                steps.append(((o.signal - s0) / saved, u.key, i))
    return steps


def greedy(units: list[Unit]) -> list[Plan]:
    """Ever faster plans: from dense, each step moves one unit to a faster option, the one adding the
    least signal per second saved (a saving that adds none, or lowers it, first). Where a step jumps
    over options of its unit that lie between (in the plan, faster than where the unit was and slower
    than where it goes; with a signal between), those come first, gentlest first: the check stops at
    the first plan that fails, and a jump to a unit's aggressive option would end it where a gentler
    one could pass.
    A step to a unit whose layers another unit in the plan replaces (a conv split or absorbing its pool)
    takes that one back to dense."""
    by_key, costs = {u.key: u for u in units}, Costs(units)
    plan: Plan = {}
    plans = [dict(plan)]
    while steps := _steps(units, plan, costs):
        _, key, i = min(steps)
        u, c = by_key[key], by_key[key].options[i]
        rivals = u.rivals(units, plan)
        if not rivals:
            parts, s0 = u.times(), _signal(u, plan)  # (times: the plan's, over u's layers)
            t0, t1 = costs.of(plan, parts), costs.of({**plan, key: i}, parts)
            between = sorted((o.signal, j) for j, o in enumerate(u.options)
                             if s0 < o.signal < c.signal and t1 < costs.of({**plan, key: j}, parts) < t0)
            plans += [{**plan, key: j} for _, j in between]
        for v in rivals:
            del plan[v.key]
        plan[key] = i
        plans.append(dict(plan))
    return plans


def threshold(units: list[Unit]) -> list[Plan]:
    """DSD'22's T-sensitive plans: for each threshold T among the measured signals, in increasing order,
    each unit's fastest option with signal <= T. Of units replacing the same layer, the one saving the
    most time takes it."""
    plans: list[Plan] = [{}]
    for t in sorted({o.signal for u in units for o in u.options if math.isfinite(o.signal)}):
        best = []
        for u in units:
            ok = [(o.seconds, i) for i, o in enumerate(u.options) if o.signal <= t]
            if ok:
                best.append((min(ok)[0] - u.dense_seconds, u, min(ok)[1]))
        plan: Plan = {}
        for _, u, i in sorted(best, key=lambda b: b[0]):
            if not u.rivals(units, plan):
                plan[u.key] = i
        if plan != plans[-1]:
            plans.append(plan)
    return plans


def seconds_of(units: dict[str, Unit], plan: Plan) -> float:
    """The planned model's time over its units' parts (Costs)."""
    return Costs(units.values()).of(plan)


def find_units(g: Graph, passes: list[Pass], timer: Timer, min_speedup: float = 1.0) -> list[Unit]:
    """The latency table: every pass's units of g with the options timed faster than min_speedup times
    their dense time (units left with none dropped)."""
    found = []
    for p in passes:
        for u in p.units(g, timer):
            u.options = [o for o in u.options if o.seconds * min_speedup < u.dense_seconds]
            if u.options:
                found.append(u)
    return found


def scored_inputs(g: Graph) -> int:
    """How many check inputs the sensitivity table scores g's options on: SCORED, fewer for a model whose
    forward pass takes more than SCORED_MACS / SCORED (ResNet-18 at 224 x 224: 35), at least MIN_SCORED."""
    macs = sum(r["macs"] for r in model_of(g, layout="nchw").layers(1))
    return int(min(SCORED, max(MIN_SCORED, SCORED_MACS // max(macs, 1))))


def score_options(g: Graph, passes: list[Pass], units: list[Unit], checks: Checks, stage: Stage,
                  progress: Callable[[str], None] | None = None) -> None:
    """The sensitivity table: each option of each unit applied alone to a copy of g (refit on the stage),
    its signal on scored_inputs(g) of the check inputs stored in option.signal."""
    checks = checks.subset(scored_inputs(g))
    for u in units:
        apply = next(p for p in passes if p.kind == u.kind).apply
        for o in u.options:
            if progress:
                progress(f"{u.name} {o.label}")
            h = g.copy()
            apply(h, {u.name: o.setting}, stage)
            o.signal = checks.signal(checks.outputs(h, g))


def fastest(candidates: list, seconds: list[float], margin: float):
    """The candidate to write, of candidates ordered from the least compressed: each later one replaces
    the one kept only if it is faster by more than `margin` of the kept one's time."""
    best = 0
    for i in range(1, len(candidates)):
        if seconds[i] < (1 - margin) * seconds[best]:
            best = i
    return candidates[best]


def plan_passes(g: Graph, passes: list[Pass], fit: np.ndarray, checks: Checks, timer: Timer,
                min_speedup: float = 1.0, allocation: str = "greedy", progress: Callable[[str], None] | None = None) -> dict:
    """Plans and applies `passes` to g in place within checks.budget (refits on the fit inputs, layer
    times from timer); returns the report."""
    if allocation not in ALLOCATIONS:
        raise CompileError(f"allocation {allocation!r}: expected one of {ALLOCATIONS}")
    clock = [time.perf_counter()]
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        clock.append(time.perf_counter())
        phases[name] = clock[-1] - clock[-2]

    found = find_units(g, passes, timer, min_speedup)
    units, costs = {u.key: u for u in found}, Costs(found)
    lap("latency")
    stage = Stage(g, fit, timer.num_threads, checks.cache)
    score_options(g, passes, found, checks, stage, progress)
    lap("sensitivity")
    plans = (greedy if allocation == "greedy" else threshold)(found)

    trials: list[dict] = []
    chosen, dense = 0, costs.of({})
    accepted, final = g, checks.verdict(checks.reference)
    dense_graph = g.copy()  # (as written if no plan passes: each conv by its fastest transform)
    if timer.transforms:
        choose_transforms(dense_graph, timer)
    dense_plan, recent = (chosen, dense_graph, final, {}), []  # (the last MEASURED plans passed, with their trials)
    for k in range(1, len(plans)):  # fixed-sequence testing: in order, up to the first failure
        if k < len(plans) - 1 and costs.of(plans[chosen]) - costs.of(plans[k]) < STEP * dense:
            continue
        h = g.copy()
        apply_plan(h, passes, units, plans[k], stage)
        if timer.transforms:
            choose_transforms(h, timer, g)
        v = checks.verdict(checks.outputs(h, accepted, keep=True))  # (runs what differs from the last plan passed)
        trial = {"plan": f"{k}/{len(plans) - 1}", "units": len(plans[k]), "seconds": costs.of(plans[k]), **v}
        trials.append(trial)
        if progress:
            progress(f"check {k}/{len(plans) - 1}")
        if not v["ok"]:
            break
        chosen, accepted, final = k, h, v
        recent = (recent + [(k, h, v, trial)])[-MEASURED:]
    lap("check")
    measured: dict[int, float] = {}
    if recent and not timer.table:  # (every plan passed keeps the budget: the fastest measured is taken)
        timed = [dense_plan, *recent]
        for (k, _, _, trial), t in zip(timed, time_graphs([h for _, h, _, _ in timed], timer.num_threads)):
            measured[k] = trial["measured_ms"] = 1e3 * t
        chosen, accepted, final, _ = fastest(timed, [measured[c[0]] for c in timed], MEASURE_MARGIN)
    lap("measure")
    vars(g).update(vars(accepted if chosen else dense_graph))
    best = plans[chosen]
    total = sum(units[k].options[i].signal for k, i in best.items()) or 1.0
    rows = []
    for u in found:
        o = u.options[best[u.key]] if u.key in best else None
        rows.append({"unit": u.name, "pass": u.kind, "choice": o.label if o else "dense",
                     "dense_ms": 1e3 * u.dense_seconds, "ms": 1e3 * (o.seconds if o else u.dense_seconds),
                     "signal": o.signal if o else 0.0, "share": o.signal / total if o else 0.0,
                     "options": [{"label": x.label, "ms": 1e3 * x.seconds, "signal": x.signal} for x in u.options]})
    budget = checks.budget
    return {"budget": {"kind": budget.kind, "limit": budget.limit, "confidence": budget.confidence},
            "allocation": allocation, "checked_inputs": checks.checked, "check_copies": len(checks.x) // checks.checked - 1,
            "plans": len(plans), "chosen": chosen, "trials": trials, "final": final, "units": rows,
            "dense_ms": 1e3 * costs.of({}), "planned_ms": 1e3 * costs.of(best),
            "measured_ms": {"dense": measured[0], "plan": measured[chosen]} if measured else None,
            "times_looked_up": timer.looked_up, "times_measured": timer.timed, "phase_seconds": phases,
            "transforms_chosen": sum("winograd" in n.attrs for n in g.nodes)}
