"""The compiler's graph IR: nodes in the runtime's op vocabulary (edgesep.ops), plus "BatchNorm",
which the clean-up passes fold away or lower. Weights are numpy arrays in their logical layout;
packing happens only when the bundle is written. A pass never changes a weight array in place, it puts a
new one in its place: copies of a graph share the arrays they did not change (Graph.copy), and a packed
form is computed once per array (compiler/lower.py)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np


class CompileError(ValueError):
    """The model cannot be compiled; the message names the op, node and reason."""


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def activation(self) -> str:
        return self.attrs.get("activation", "none")

    def copy(self) -> "Node":
        """A copy to change: its attributes, lists and dicts new, the weight arrays shared."""
        return copy.deepcopy(self, {id(a): a for a in self.weights.values()})


@dataclass
class Graph:
    inputs: list[tuple[str, list]]  # name, shape (None for the dynamic batch dim)
    outputs: list[str]
    nodes: list[Node]
    shapes: dict[str, list] = field(default_factory=dict)  # value -> shape where known (batch None)

    def copy(self) -> "Graph":
        """A copy to change: its nodes, their attributes and the lists and dicts are new, the weight
        arrays shared (a pass replaces an array, never writes into one)."""
        shared = {id(a): a for n in self.nodes for a in n.weights.values()}
        return copy.deepcopy(self, shared)

    def producer(self, value: str) -> Node | None:
        return next((n for n in self.nodes if n.output == value), None)

    def consumers(self, value: str) -> list[Node]:
        return [n for n in self.nodes if value in n.inputs]

    def only_feeds(self, node: Node, consumer: Node) -> bool:
        """True if `node`'s output goes to `consumer` alone and is not a graph output."""
        return node.output not in self.outputs and self.consumers(node.output) == [consumer]

    def absorb(self, kept: Node, removed: Node) -> None:
        """Drops `removed` (which reads kept's output) and gives its output name to `kept`."""
        self.nodes.remove(removed)
        kept.output = removed.output

    def replaced(self, node: Node, nodes: list[Node]) -> "Graph":
        """A graph sharing this one's nodes, with `node` replaced by `nodes`."""
        i = self.nodes.index(node)
        return Graph(self.inputs, self.outputs, self.nodes[:i] + nodes + self.nodes[i + 1:], self.shapes)

    def rank(self, value: str) -> int | None:
        s = self.shapes.get(value)
        return None if s is None else len(s)


def channel_vector(c: np.ndarray, channels: int, rank: int | None) -> np.ndarray | None:
    """c as a length-`channels` float32 vector if it broadcasts along axis 1 only of a tensor of `rank`
    (a single value counts), else None."""
    if c.size == 1:
        return np.full(channels, float(c.reshape(-1)[0]), np.float32)
    if rank is None or rank < 2 or c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    if shape[1] != channels or any(d != 1 for i, d in enumerate(shape) if i != 1):
        return None
    return c.reshape(-1).astype(np.float32)
