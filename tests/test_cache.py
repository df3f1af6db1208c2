"""The planner's activation cache (compiler/cache.py): a changed copy of a graph gets the activations a
whole run gives, running only from the change; keys follow contents, not array identity."""
from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from edgesep.compiler.cache import Cache
from edgesep.compiler.execute import model_of, run
from edgesep.compiler.onnx_import import import_onnx
from edgesep.compiler.passes import cleanup


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.a, self.b = (nn.Conv2d(c, 8, 3, padding=1) for c in (3, 8, 8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.head(torch.relu(x + self.b(torch.relu(self.a(x)))))


def graph(tmp_path):
    torch.manual_seed(0)
    torch.onnx.export(Residual().eval(), torch.randn(1, 3, 12, 12), tmp_path / "m.onnx", dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    g = import_onnx(onnx.load(tmp_path / "m.onnx"), None)
    cleanup(g)
    return g


def test_a_changed_copy_runs_from_the_change(tmp_path):
    g = graph(tmp_path)
    x = np.random.default_rng(0).standard_normal((10, 3, 12, 12)).astype(np.float32)
    cache = Cache()
    values = [n.output for n in g.nodes]
    got = cache.values(g, values, x)
    for v, a in zip(values, got):
        np.testing.assert_allclose(a, run(model_of(g, [v]), x)[0], rtol=1e-5, atol=1e-6)
    h = g.copy()
    b = next(n for n in h.nodes if n.name.startswith("/b/"))
    b.weights["weight"] = 0.5 * b.weights["weight"]  # a new array: what a pass does
    keys_g, keys_h = cache.keys(g), cache.keys(h)
    changed = {v for v in values if keys_g[v] != keys_h[v]}
    assert b.output in changed and h.outputs[0] in changed and g.nodes[0].output not in changed
    misses = cache.misses
    (y,) = cache.values(h, [h.outputs[0]], x)
    np.testing.assert_allclose(y, run(model_of(h), x)[0], rtol=1e-5, atol=1e-6)
    assert cache.misses == misses + 1
    # The same contents in other arrays: the same keys, and the cached activations come back.
    k = g.copy()
    for n in k.nodes:
        n.weights = {name: w.copy() for name, w in n.weights.items()}
    assert cache.keys(k) == keys_g and cache.values(k, [k.outputs[0]], x)[0] is got[-1]
    # Another input array with the same values hits; different values do not.
    assert cache.values(g, [g.outputs[0]], x.copy())[0] is got[-1]
    assert not np.allclose(cache.values(g, [g.outputs[0]], x + 1)[0], got[-1])


def test_the_cache_keeps_to_its_bound(tmp_path):
    g = graph(tmp_path)
    x = np.random.default_rng(0).standard_normal((10, 3, 12, 12)).astype(np.float32)
    one = 10 * 8 * 12 * 12 * 4  # bytes of one conv's activations
    cache = Cache(max_bytes=2 * one)
    cache.values(g, [n.output for n in g.nodes[:4]], x)
    assert cache._bytes <= 2 * one
