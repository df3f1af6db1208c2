"""Activations and refits shared by the copies of a graph the planner tries (compiler/plan.py).

A value's key is what computes it: its producer's op, attributes and weights (by a digest of their
contents, taken once per array: a pass puts a new array in place of one it changes, ir.Graph.copy shares
the rest) and its inputs' keys. A copy that changed one layer finds every activation upstream of the
change here and runs only from there, and a refit whose input and target are keyed as before is not
redone. Consecutive plans of the planner's sequence differ by one step: checking one redoes the work
downstream of that step only.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import weakref
from collections import OrderedDict
from typing import Callable

import numpy as np

from .ir import Graph, Node


def _free_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # (not a POSIX system)
        return 6 << 30


def _nbytes(obj) -> int:
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(o) for o in obj)
    if isinstance(obj, Node):
        return sum(w.nbytes for w in obj.weights.values())
    return 0


class Cache:
    """Activations of graph values on input arrays, and results derived from them, kept up to max_bytes
    (least recently used first out; by default a third of the memory free when it is made)."""

    def __init__(self, max_bytes: int | None = None):
        self.max_bytes, self.hits, self.misses = max_bytes or _free_memory() // 3, 0, 0
        self._count = itertools.count(1)
        self._tokens: dict[int, tuple[weakref.ref, bytes]] = {}  # id(array) -> (the array, its digest)
        self._ids: dict[tuple, int] = {}  # what computes a value -> its key
        self._store: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._bytes = 0

    def token(self, a: np.ndarray) -> bytes:
        """A digest of the array's type, shape and contents (computed once per array)."""
        hit = self._tokens.get(id(a))
        if hit is not None and hit[0]() is a:
            return hit[1]
        h = hashlib.blake2b(f"{a.dtype.str}{a.shape}".encode(), digest_size=16)
        h.update(np.ascontiguousarray(a).data)
        t = h.digest()
        self._tokens[id(a)] = (weakref.ref(a, lambda _, i=id(a), tokens=self._tokens: tokens.pop(i, None)), t)
        return t

    def keys(self, g: Graph) -> dict[str, int]:
        """Every value of g by its key."""
        keys = {name: self._key(("input", name, repr(shape))) for name, shape in g.inputs}
        for n in g.nodes:
            keys[n.output] = self._key((n.op, repr(sorted(n.attrs.items())), tuple(keys[v] for v in n.inputs),
                                        tuple(sorted((k, self.token(w)) for k, w in n.weights.items()))))
        return keys

    def changed(self, g: Graph, base: Graph) -> tuple[list[str], list[Node]]:
        """Where g is a changed copy of `base`: g's nodes that compute what base does not, in order, and
        the values they read that base computes too (their cut), by key."""
        old, keys = set(self.keys(base).values()), self.keys(g)
        changed = [n for n in g.nodes if keys[n.output] not in old]
        return list(dict.fromkeys(v for n in changed for v in n.inputs if keys[v] in old)), changed

    def _key(self, what: tuple) -> int:
        if what not in self._ids:
            self._ids[what] = next(self._count)
        return self._ids[what]

    def memo(self, key: tuple, make: Callable[[], object]) -> object:
        """make(), kept under key (a tuple of keys and tokens: whatever the result depends on)."""
        hit = self._store.get(key)
        if hit is not None:
            self._store.move_to_end(key)
            self.hits += 1
            return hit[0]
        self.misses += 1
        obj = make()
        self._put(key, obj)
        return obj

    def values(self, g: Graph, names: list[str], x: np.ndarray, num_threads: int = 1) -> list[np.ndarray]:
        """The activations of g's values `names` with g fed x (one-input graphs): from here where kept,
        else run from the nearest kept values upstream (or x)."""
        from .execute import model_of, run

        keys, xt = self.keys(g), self.token(x)
        (source, shape), = g.inputs
        found = {v: self._store[("value", xt, keys[v])][0] for v in names if ("value", xt, keys[v]) in self._store}
        missing = [v for v in dict.fromkeys(names) if v not in found and v != source]
        self.hits += len(found)
        if missing:
            self.misses += len(missing)
            producers = {n.output: n for n in g.nodes}
            cut, need, todo, seen = [], set(), list(missing), set()
            while todo:
                v = todo.pop()
                if v in seen:
                    continue
                seen.add(v)
                if v == source or v not in missing and ("value", xt, keys[v]) in self._store:
                    cut.append(v)
                else:
                    need.add(producers[v].name)
                    todo += producers[v].inputs
            arrays = [x if v == source else self._store[("value", xt, keys[v])][0] for v in cut]
            part = Graph([(v, [shape[0], *a.shape[1:]]) for v, a in zip(cut, arrays)], missing,
                         [n for n in g.nodes if n.name in need], g.shapes)
            for v, a in zip(missing, run(model_of(part, num_threads=num_threads), arrays)):
                found[v] = a
                self._put(("value", xt, keys[v]), a)
        return [x if v == source else found[v] for v in names]

    def _put(self, key: tuple, obj: object) -> None:
        size = _nbytes(obj)
        self._store[key] = (obj, size)
        self._bytes += size
        while self._bytes > self.max_bytes and len(self._store) > 1:
            _, (_, old) = self._store.popitem(last=False)
            self._bytes -= old
