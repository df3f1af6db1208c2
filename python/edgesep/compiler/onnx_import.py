"""ONNX -> IR, as real exporters write models: weights as initializers or Constant nodes, BN kept or
folded, a dynamic batch dim, opset 11 and later. Sub-graphs on constants (the shape arithmetic that
exporters emit: Shape, Gather, Cast, Unsqueeze, Concat, ...) are evaluated here, by onnx's reference
implementation, with the dynamic batch dim carried as a symbol. Everything else maps to runtime ops;
an op that does not is an error naming the op type, the node and the opset."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from .ir import CompileError, Graph, Node, channel_vector


class _Batch:
    """The dynamic batch dim inside a folded shape computation."""

    def __repr__(self) -> str:
        return "N"


BATCH = _Batch()
_SYMBOLIC_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Identity")
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hard_swish",
                "LeakyRelu": "leaky_relu", "HardSigmoid": "hard_sigmoid", "Clip": "clip", "PRelu": "prelu"}
_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min")


def _dims(t: onnx.TypeProto) -> list | None:
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim]


def _fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, list]) -> None:
    """Sets the declared dims of graph inputs (None keeps a dim dynamic), checking they are compatible."""
    inputs = {v.name: v for v in model.graph.input}
    for name, shape in shapes.items():
        if name not in inputs:
            raise CompileError(f"--input-shape names {name!r}, which is not a model input ({', '.join(inputs)})")
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise CompileError(f"input {name!r} has rank {len(dims)}; the given shape {shape} has rank {len(shape)}")
        for d, new in zip(dims, shape):
            if d.HasField("dim_value") and new is not None and d.dim_value != new:
                raise CompileError(f"input {name!r}: the model fixes a dim to {d.dim_value}, the given shape to {new}")
            if new is not None:
                d.dim_value = new


class _Importer:
    def __init__(self, model: onnx.ModelProto, input_shapes: dict[str, list] | None = None) -> None:
        if input_shapes:
            model = onnx.ModelProto.FromString(model.SerializeToString())
            _fix_input_shapes(model, input_shapes)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if self.opset is None:
            raise CompileError("the model declares no ONNX opset: an empty or non-ONNX file?")
        if self.opset < 7:
            raise CompileError(f"model uses opset {self.opset}; edgesep imports opset 7 and later (exporters write 11+)")
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - shapes are a help, not a requirement
            pass
        self.model = model
        g = model.graph
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.alias: dict[str, str] = {}
        self.shapes: dict[str, list] = {}
        for v in list(g.input) + list(g.value_info) + list(g.output):
            d = _dims(v.type)
            if d is not None:
                self.shapes[v.name] = d
        self.inputs = []
        for v in g.input:
            if v.name in self.consts:
                continue
            elem = v.type.tensor_type.elem_type
            if elem != onnx.TensorProto.FLOAT:
                raise CompileError(f"input {v.name!r} has element type {onnx.TensorProto.DataType.Name(elem)}; "
                                   "edgesep runs float32 models")
            shape = self.shapes.get(v.name)
            if shape is None or any(d is None for d in shape[1:]):
                raise CompileError(f"input {v.name!r} has shape {shape}: only the batch (first) dim may be dynamic; "
                                   "fix the others with --input-shape (input_shapes=)")
            self.inputs.append((v.name, shape))
        self.nodes: list[Node] = []
        self.names: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------------
    def where(self, node: onnx.NodeProto) -> str:
        return f"{node.op_type} node {node.name!r} (opset {self.opset})"

    def fail(self, node: onnx.NodeProto, why: str) -> None:
        raise CompileError(f"{self.where(node)}: {why}")

    def real(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(self.real(name)) if name else None

    def const_f32(self, node: onnx.NodeProto, name: str) -> np.ndarray:
        c = self.const(name)
        if c is None:
            self.fail(node, f"input {name!r} must be a constant")
        if c.dtype == object:
            self.fail(node, f"input {name!r} depends on the dynamic batch dim")
        return np.ascontiguousarray(c, np.float32)

    def const_scalar(self, node: onnx.NodeProto, name: str) -> float:
        c = self.const_f32(node, name)
        if c.size != 1:
            self.fail(node, f"input {name!r} must be a single value, has shape {c.shape}")
        return float(c.reshape(-1)[0])

    def attr(self, node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                v = onnx.helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else (list(v) if isinstance(v, (list, tuple)) else v)
        return default

    def emit(self, node: onnx.NodeProto, op: str, inputs: list[str], attrs: dict | None = None,
             weights: dict | None = None, output: str | None = None) -> Node:
        name = node.name or f"{node.op_type}_{len(self.nodes)}"
        base, k = name, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        n = Node(op, name, [self.real(x) for x in inputs], output or node.output[0], attrs or {}, weights or {})
        self.nodes.append(n)
        return n

    def activation_input(self, node: onnx.NodeProto, i: int = 0) -> str:
        x = node.input[i]
        if self.const(x) is not None:
            self.fail(node, f"input {x!r} is a constant where edgesep expects an activation")
        return x

    # -- constant folding ------------------------------------------------------------------------
    def fold(self, node: onnx.NodeProto) -> bool:
        ins = [x for x in node.input if x]
        if node.op_type == "Constant":
            self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t) if node.attribute[0].name == "value" \
                else np.array(onnx.helper.get_attribute_value(node.attribute[0]))
            return True
        if node.op_type == "Shape":
            shape = self.shapes.get(self.real(node.input[0]), self.shapes.get(node.input[0]))
            if shape is None:
                self.fail(node, "the shape of its input is unknown, so it cannot be folded")
            dims = [BATCH if d is None and i == 0 else d for i, d in enumerate(shape)]
            if any(d is None for d in dims):
                self.fail(node, "reads a dynamic dim other than the batch dim")
            start, end = self.attr(node, "start", 0), self.attr(node, "end", None)
            dims = dims[start:end]
            self.consts[node.output[0]] = np.array(dims, dtype=object if BATCH in dims else np.int64)
            return True
        if not all(self.const(x) is not None for x in ins):
            return False
        values = [self.const(x) for x in ins]
        if any(v.dtype == object for v in values):
            self.consts[node.output[0]] = np.asarray(self.fold_symbolic(node, values), dtype=object)
            return True
        try:
            ev = ReferenceEvaluator(node, opsets={"": self.opset})
            out = ev.run(None, {x: self.const(x) for x in ins})
        except Exception as e:  # noqa: BLE001 - report any evaluator failure as a compile error
            self.fail(node, f"cannot evaluate on constants: {e}")
        for name, v in zip(node.output, out):
            self.consts[name] = np.asarray(v)
        return True

    def fold_symbolic(self, node: onnx.NodeProto, v: list[np.ndarray]) -> np.ndarray:
        op = node.op_type
        if op not in _SYMBOLIC_OPS:
            self.fail(node, "computes on the dynamic batch dim, which edgesep cannot fold; export with a fixed "
                            "batch or use x.flatten(1) / x.view(x.size(0), -1)")
        if op == "Gather":
            return np.take(v[0], v[1].astype(np.int64), axis=self.attr(node, "axis", 0))
        if op in ("Unsqueeze", "Squeeze"):
            axes = self.attr(node, "axes") if len(v) < 2 else [int(a) for a in v[1]]
            if op == "Unsqueeze":
                out = v[0]
                rank = out.ndim + len(axes)
                for a in sorted(a % rank for a in axes):
                    out = np.expand_dims(out, a)
                return out
            return np.squeeze(v[0], axis=tuple(axes) if axes else None)
        if op == "Concat":
            return np.concatenate([np.asarray(x, dtype=object) for x in v], axis=self.attr(node, "axis"))
        if op == "Slice":
            starts, ends = v[1], v[2]
            axes = v[3] if len(v) > 3 else range(len(starts))
            steps = v[4] if len(v) > 4 else [1] * len(starts)
            idx = [slice(None)] * v[0].ndim
            for s, e, a, st in zip(starts, ends, axes, steps):
                idx[int(a)] = slice(int(s), int(e), int(st))
            return v[0][tuple(idx)]
        return v[0]  # Cast, Identity

    # -- ops -------------------------------------------------------------------------------------
    def window(self, node: onnx.NodeProto, kernel: list[int], strides: list[int], dilations: list[int]) -> list[int]:
        """ONNX pads / auto_pad -> [top, left, bottom, right]."""
        auto = self.attr(node, "auto_pad", "NOTSET")
        if auto in ("NOTSET", "VALID"):
            p = self.attr(node, "pads", [0, 0, 0, 0]) if auto == "NOTSET" else [0, 0, 0, 0]
            if len(p) != 4:
                self.fail(node, f"only 2-D windows are supported (pads {p})")
            return [p[0], p[1], p[2], p[3]]
        shape = self.shapes.get(node.input[0])
        if shape is None or None in shape[2:]:
            self.fail(node, f"auto_pad={auto} needs the input's spatial shape, which is unknown")
        pads = [0] * 4
        for i in range(2):
            size = shape[2 + i]
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
            small = total // 2
            pads[i], pads[2 + i] = (small, total - small) if auto == "SAME_UPPER" else (total - small, small)
        return pads

    def conv(self, node: onnx.NodeProto) -> None:
        w = self.const_f32(node, node.input[1])
        if w.ndim != 4:
            self.fail(node, f"only 2-D convolutions are supported (weight shape {w.shape})")
        k = self.attr(node, "kernel_shape", list(w.shape[2:]))
        s = self.attr(node, "strides", [1, 1])
        d = self.attr(node, "dilations", [1, 1])
        weights = {"weight": w}
        if len(node.input) > 2 and node.input[2]:
            weights["bias"] = self.const_f32(node, node.input[2])
        self.emit(node, "Conv", [self.activation_input(node)],
                  {"kernel_shape": k, "strides": s, "dilations": d, "pads": self.window(node, k, s, d),
                   "group": self.attr(node, "group", 1), "out_channels": int(w.shape[0])}, weights)

    def pool(self, node: onnx.NodeProto) -> None:
        if len(node.output) > 1 and node.output[1]:
            self.fail(node, "the indices output of MaxPool is not supported")
        k = self.attr(node, "kernel_shape")
        if len(k) != 2:
            self.fail(node, f"only 2-D pooling is supported (kernel_shape {k})")
        s = self.attr(node, "strides", [1, 1])
        d = self.attr(node, "dilations", [1, 1])
        attrs = {"kernel_shape": k, "strides": s, "pads": self.window(node, k, s, d),
                 "ceil_mode": self.attr(node, "ceil_mode", 0)}
        if node.op_type == "MaxPool":
            attrs["dilations"] = d
        else:
            attrs["count_include_pad"] = self.attr(node, "count_include_pad", 0)
        self.emit(node, node.op_type, [self.activation_input(node)], attrs)

    def gemm(self, node: onnx.NodeProto) -> None:
        if self.attr(node, "transA", 0):
            self.fail(node, "transA=1 is not supported")
        b = self.const_f32(node, node.input[1]) * self.attr(node, "alpha", 1.0)
        w = b if self.attr(node, "transB", 0) else b.T
        weights = {"weight": np.ascontiguousarray(w, np.float32)}
        if len(node.input) > 2 and node.input[2]:
            c = self.const_f32(node, node.input[2]) * self.attr(node, "beta", 1.0)
            if c.size not in (1, w.shape[0]):
                self.fail(node, f"bias of shape {c.shape} does not broadcast per output feature")
            weights["bias"] = np.broadcast_to(c.reshape(-1), (w.shape[0],)).astype(np.float32)
        self.fc(node, weights)

    def fc(self, node: onnx.NodeProto, weights: dict) -> None:
        x = self.activation_input(node)
        rank = len(self.shapes[x]) if x in self.shapes else None
        if rank is not None and rank != 2:
            self.fail(node, f"input of rank {rank}: only [batch, features] inputs map to a fully-connected layer")
        self.emit(node, "Fc", [x], {"out_features": int(weights["weight"].shape[0])}, weights)

    def matmul(self, node: onnx.NodeProto) -> None:
        b = self.const(node.input[1])
        if b is None or b.ndim != 2:
            self.fail(node, "only x @ W with a constant 2-D W is supported")
        self.fc(node, {"weight": np.ascontiguousarray(self.const_f32(node, node.input[1]).T)})

    def binary(self, node: onnx.NodeProto) -> None:
        if len(node.input) != 2:
            self.fail(node, f"{len(node.input)} operands; edgesep supports 2")
        consts = [self.const(x) for x in node.input]
        if consts[0] is not None and consts[1] is not None:
            self.fail(node, "both operands constant (should have been folded)")
        if consts[0] is None and consts[1] is None:
            self.emit(node, node.op_type, list(node.input))
            return
        i = 0 if consts[0] is not None else 1
        self.emit(node, node.op_type, [node.input[1 - i]], {"constant_index": i},
                  {"constant": self.const_f32(node, node.input[i])})

    def activation(self, node: onnx.NodeProto) -> None:
        kind = _ACTIVATIONS[node.op_type]
        attrs: dict = {"activation": kind}
        weights = {}
        if kind == "leaky_relu":
            attrs["alpha"] = float(self.attr(node, "alpha", 0.01))
        elif kind == "hard_sigmoid":
            attrs["alpha"], attrs["beta"] = float(self.attr(node, "alpha", 0.2)), float(self.attr(node, "beta", 0.5))
        elif kind == "clip":
            lo, hi = self.attr(node, "min", -np.inf), self.attr(node, "max", np.inf)
            if len(node.input) > 1 and node.input[1]:
                lo = self.const_scalar(node, node.input[1])
            if len(node.input) > 2 and node.input[2]:
                hi = self.const_scalar(node, node.input[2])
            if lo == 0 and hi == np.inf:
                attrs = {"activation": "relu"}
            else:
                attrs.update({k: float(v) for k, v in (("clip_min", lo), ("clip_max", hi)) if np.isfinite(v)})
        elif kind == "prelu":
            slope = self.const_f32(node, node.input[1])
            shape = self.shapes.get(node.input[0])
            vec = channel_vector(slope, shape[1], len(shape)) if shape and len(shape) > 1 else None
            if vec is None:
                self.fail(node, f"slope of shape {slope.shape} is not one value per channel (axis 1) of {shape}")
            weights["slope"] = slope.reshape(-1)[:1] if slope.size == 1 else vec
        self.emit(node, "Activation", [self.activation_input(node)], attrs, weights)

    def batchnorm(self, node: onnx.NodeProto) -> None:
        scale, bias, mean, var = (self.const_f32(node, x) for x in node.input[1:5])
        self.emit(node, "BatchNorm", [self.activation_input(node)], {"epsilon": float(self.attr(node, "epsilon", 1e-5))},
                  {"scale": scale, "bias": bias, "mean": mean, "var": var})

    def reshape(self, node: onnx.NodeProto) -> None:
        x = self.activation_input(node)
        if node.op_type == "Flatten":
            self.emit(node, "Flatten", [x], {"axis": self.attr(node, "axis", 1)})
            return
        if node.op_type in ("Squeeze", "Unsqueeze"):
            out = self.shapes.get(node.output[0])
            if out is None or None in out[1:]:
                self.fail(node, "its output shape is unknown")
            target = [0 if i == 0 and out[0] is None else d for i, d in enumerate(out)]
        else:
            target = self.const(node.input[1])
            if target is None:
                self.fail(node, "the target shape must be constant")
            if self.attr(node, "allowzero", 0) and 0 in list(target):
                self.fail(node, "allowzero=1 with a zero dim is not supported")
            target = list(target)
            for i, t in enumerate(target):
                if t is BATCH:
                    if i != 0:
                        self.fail(node, "moves the dynamic batch dim away from the front")
                    target[i] = 0
        self.emit(node, "Reshape", [x], {"shape": [int(t) for t in target]})

    def pad(self, node: onnx.NodeProto) -> None:
        if self.opset < 11:
            pads, value = self.attr(node, "pads"), self.attr(node, "value", 0.0)
        else:
            pads = self.const(node.input[1])
            if pads is None:
                self.fail(node, "pads must be constant")
            value = self.const_scalar(node, node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0
            if len(node.input) > 3 and node.input[3]:
                self.fail(node, "the axes input is not supported")
        if min(pads) < 0:
            self.fail(node, f"negative pads (cropping) are not supported: {list(pads)}")
        self.emit(node, "Pad", [self.activation_input(node)],
                  {"pads": [int(p) for p in pads], "mode": self.attr(node, "mode", "constant"), "value": float(value)})

    def softmax(self, node: onnx.NodeProto) -> None:
        legacy = self.opset < 13
        self.emit(node, "Softmax", [self.activation_input(node)],
                  {"axis": self.attr(node, "axis", 1 if legacy else -1), "coerce_2d": int(legacy)})

    def concat(self, node: onnx.NodeProto) -> None:
        self.emit(node, "Concat", [self.activation_input(node, i) for i in range(len(node.input))],
                  {"axis": self.attr(node, "axis")})

    def reduce_mean(self, node: onnx.NodeProto) -> None:
        """ReduceMean over the spatial dims of an NCHW tensor (x.mean((2, 3)) in torch) = GlobalAveragePool."""
        x = self.activation_input(node)
        axes = self.attr(node, "axes") if len(node.input) < 2 else list(self.const(node.input[1]))
        shape = self.shapes.get(x)
        if shape is None or len(shape) != 4 or axes is None or sorted(int(a) % 4 for a in axes) != [2, 3]:
            self.fail(node, f"only a mean over the spatial dims (2, 3) of a 4-D tensor is supported (axes {axes})")
        if self.attr(node, "keepdims", 1):
            self.emit(node, "GlobalAveragePool", [x])
            return
        pooled = node.output[0] + "/pooled"
        self.emit(node, "GlobalAveragePool", [x], output=pooled)
        self.emit(node, "Reshape", [pooled], {"shape": [0, -1]})

    def handlers(self) -> dict[str, Callable[[onnx.NodeProto], None]]:
        h: dict[str, Callable] = {"Conv": self.conv, "MaxPool": self.pool, "AveragePool": self.pool, "Gemm": self.gemm,
                                  "MatMul": self.matmul, "BatchNormalization": self.batchnorm, "Flatten": self.reshape,
                                  "Reshape": self.reshape, "Squeeze": self.reshape, "Unsqueeze": self.reshape,
                                  "Pad": self.pad, "Softmax": self.softmax, "Concat": self.concat,
                                  "ReduceMean": self.reduce_mean}
        h.update({op: self.binary for op in _BINARY})
        h.update({op: self.activation for op in _ACTIVATIONS})
        for op in ("GlobalAveragePool", "GlobalMaxPool"):
            h[op] = lambda n: self.emit(n, n.op_type, [self.activation_input(n)])
        h["Transpose"] = lambda n: self.emit(n, "Transpose", [self.activation_input(n)], {"perm": self.attr(n, "perm", [])})
        return h

    def run(self) -> Graph:
        handlers = self.handlers()
        for node in self.model.graph.node:
            if node.domain not in ("", "ai.onnx"):
                self.fail(node, f"custom domain {node.domain!r} is not supported")
            if self.fold(node):
                continue
            if node.op_type in ("Dropout", "Identity"):
                if len(node.output) > 1 and node.output[1]:
                    self.fail(node, "the mask output is not supported")
                self.alias[node.output[0]] = self.real(node.input[0])
                continue
            handler = handlers.get(node.op_type)
            if handler is None:
                self.fail(node, "unsupported op")
            handler(node)
        outputs = [o.name for o in self.model.graph.output]
        # A graph output reached through Identity/Dropout keeps its ONNX name: rename its producer.
        for name in outputs:
            real = self.real(name)
            if real != name:
                prod = next((n for n in self.nodes if n.output == real), None)
                if prod is None or real in outputs:
                    raise CompileError(f"graph output {name!r} is an alias of {real!r}, which edgesep cannot rename")
                prod.output = name
                for n in self.nodes:
                    n.inputs = [name if x == real else x for x in n.inputs]
            elif name in self.consts:
                raise CompileError(f"graph output {name!r} is a constant")
        shapes = {k: [None if i == 0 and d is None else d for i, d in enumerate(v)] for k, v in self.shapes.items()}
        return Graph(self.inputs, outputs, self.nodes, shapes)


def import_onnx(model: onnx.ModelProto | str, input_shapes: dict[str, list] | None = None) -> Graph:
    """Reads an ONNX model (a ModelProto or a path) into the compiler's IR. input_shapes: per input name,
    dims to fix (None leaves one dynamic), for models exported with dynamic spatial dims."""
    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
            raise CompileError(f"{model}: not a readable ONNX model: {e}") from e
    return _Importer(model, input_shapes).run()
