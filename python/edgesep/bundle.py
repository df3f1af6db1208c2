"""The edgesep bundle (.esb): writer and validating reader. The format is specified in
docs/bundle-format.md; this module is its one implementation.

Layout of a file (little-endian)::

    0   8 bytes  magic b"EDGESEP\\0"
    8   u32      format version (FORMAT_VERSION)
    12  u32      CRC-32 of the header bytes (format 4; 0 in formats 1-3)
    16  u64      header length in bytes
    24  u64      data offset (a multiple of 64, after the header)
    32  ...      header: UTF-8 JSON (graph, tensor table, metadata, report)
    data offset  tensor data; each tensor at data offset + its offset (a multiple of 64)
"""
from __future__ import annotations

import json
import math
import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .ops import ACTIVATION_LAYOUTS, ACTIVATIONS, LIMITS, OPS, attr_range, is_depthwise

MAGIC = b"EDGESEP\0"
# 2 added the integer dtypes (sparse indices); 3 the NHWC activation layout (the `layout` attribute of
# convs and pools, weight layouts conv_nhwc16 and khwc) and Winograd convs (attribute `winograd`, layout
# wino23_nhwc16); 4 the header's CRC-32 in the preamble (the field was reserved, 0) and the value
# limits (ops.LIMITS) stated; 5 Winograd F(4x4, 3x3) (layout wino43_nhwc16; attribute `winograd` the
# output tile's side, 2 or 4, where 1 meant F(2x2, 3x3)). Older files read unchanged (1-4 are checked
# against the same limits).
FORMAT_VERSION = 5
READ_VERSIONS = (1, 2, 3, 4, 5)
DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "uint16": np.dtype("<u2")}
ALIGN = 64
_PREAMBLE = struct.Struct("<8sIIQQ")
GEMM_MR = 6  # rows per weight panel of layout conv_mr6; equals kGemmMR in csrc/kernels/kernels.h
PANEL_NC = 16  # output channels per weight panel of layout conv_nhwc16; equals kPanelNC there
LAYOUTS = ("plain", "conv_mr6", "conv_nhwc16", "wino23_nhwc16", "wino43_nhwc16", "khwc", "bcsr")
# Winograd F(2x2, 3x3) and F(4x4, 3x3) (interpolation points 0, +-1 and 0, +-1, +-2): the weight
# transform G (U = G g G^T per output and input channel), by weight layout.
WINO_G = {
    "wino23_nhwc16": np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]),
    "wino43_nhwc16": np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
}


def wino_layout(tile: int) -> str:
    """The weight layout of a Winograd conv whose `winograd` attribute is `tile` (1 in bundles before
    version 5: F(2x2, 3x3))."""
    return "wino43_nhwc16" if tile == 4 else "wino23_nhwc16"


class BundleError(ValueError):
    """A bundle that cannot be loaded: the message names what is wrong and where."""


def conv_mr6_count(shape: list[int], groups: int) -> int:
    """Floats in a conv weight of logical shape [N, C/groups, kh, kw] packed as conv_mr6."""
    n, cg, kh, kw = shape
    ng = n // groups
    return groups * math.ceil(ng / GEMM_MR) * GEMM_MR * cg * kh * kw


def _phase_taps(shape: list[int], phases: int) -> tuple[int, list[np.ndarray]]:
    """The tap axis of a 1-D kernel [n, c, kh, kw] (kh or kw, the other being 1) and each phase's taps on it."""
    if min(shape[2], shape[3]) != 1:
        raise ValueError(f"phase order needs a 1-D kernel, not {shape[2]}x{shape[3]}")
    axis = 2 if shape[3] == 1 else 3
    return axis, [np.arange(p, shape[axis], phases) for p in range(phases)]


def pack_conv_mr6(w: np.ndarray, groups: int, phases: int = 1) -> np.ndarray:
    """Packs conv weights [N, C/groups, kh, kw] for the GEMM kernels: per group, panels of GEMM_MR
    output channels (zero-padded), each panel stored depth-major: panel[k][r] = W[p*MR + r, k].
    phases > 1 (a separable pass at that stride; kh or kw is 1): the conv_mr6 packings of the taps
    p, p + phases, ... for each phase p, one after another (csrc/kernels/kernels.h, sep_weight_index)."""
    if phases > 1:
        axis, taps = _phase_taps(w.shape, phases)
        return np.concatenate([pack_conv_mr6(np.take(w, t, axis=axis), groups) for t in taps])
    n, cg, kh, kw = w.shape
    ng, k = n // groups, cg * kh * kw
    panels = math.ceil(ng / GEMM_MR)
    out = np.zeros((groups, panels * GEMM_MR, k), np.float32)
    out[:, :ng] = w.reshape(groups, ng, k)
    return np.ascontiguousarray(out.reshape(groups, panels, GEMM_MR, k).transpose(0, 1, 3, 2)).reshape(-1)


def unpack_conv_mr6(packed: np.ndarray, shape: list[int], groups: int, phases: int = 1) -> np.ndarray:
    """Inverse of pack_conv_mr6."""
    if phases > 1:
        axis, taps = _phase_taps(shape, phases)
        w, at = np.zeros(shape, np.float32), 0
        for t in taps:
            sub = list(shape)
            sub[axis] = len(t)
            size = conv_mr6_count(sub, groups)
            w[(slice(None),) * axis + (t,)] = unpack_conv_mr6(packed[at:at + size], sub, groups)
            at += size
        return w
    n, cg, kh, kw = shape
    ng, k = n // groups, cg * kh * kw
    panels = math.ceil(ng / GEMM_MR)
    w = np.asarray(packed).reshape(groups, panels, k, GEMM_MR).transpose(0, 1, 3, 2).reshape(groups, panels * GEMM_MR, k)
    return np.ascontiguousarray(w[:, :ng]).reshape(shape)


def conv_nhwc16_count(shape: list[int], groups: int) -> int:
    """Floats in a conv weight of logical shape [N, C/groups, kh, kw] packed as conv_nhwc16."""
    n, cg, kh, kw = shape
    return groups * math.ceil(n // groups / PANEL_NC) * PANEL_NC * cg * kh * kw


def pack_conv_nhwc16(w: np.ndarray, groups: int) -> np.ndarray:
    """Packs conv weights [N, C/groups, kh, kw] for the NHWC conv core: per group, panels of PANEL_NC
    output channels (zero-padded), each [kh*kw taps][C/groups][PANEL_NC]."""
    n, cg, kh, kw = w.shape
    ng, panels = n // groups, math.ceil(n // groups / PANEL_NC)
    out = np.zeros((groups, panels * PANEL_NC, cg, kh * kw), np.float32)
    out[:, :ng] = w.reshape(groups, ng, cg, kh * kw)
    return np.ascontiguousarray(out.reshape(groups, panels, PANEL_NC, cg, kh * kw).transpose(0, 1, 4, 3, 2)).reshape(-1)


def unpack_conv_nhwc16(packed: np.ndarray, shape: list[int], groups: int) -> np.ndarray:
    """Inverse of pack_conv_nhwc16."""
    n, cg, kh, kw = shape
    ng, panels = n // groups, math.ceil(n // groups / PANEL_NC)
    w = np.asarray(packed).reshape(groups, panels, kh * kw, cg, PANEL_NC).transpose(0, 1, 4, 3, 2)
    return np.ascontiguousarray(w.reshape(groups, panels * PANEL_NC, cg, kh * kw)[:, :ng]).reshape(shape)


def pack_wino_nhwc16(w: np.ndarray, layout: str) -> np.ndarray:
    """A 3x3 conv's weights [N, C, 3, 3] for Winograd (layout wino23_nhwc16 or wino43_nhwc16) on the NHWC
    core: U = G g G^T (in double), then for each of the (M+2)^2 transformed taps the conv_nhwc16 packing
    of that C -> N 1x1 conv."""
    g = WINO_G[layout]
    gw = np.tensordot(w.astype(np.float64), g, axes=([3], [1]))  # [N, C, 3, j] (two products: 3x einsum's speed)
    u = np.tensordot(g, gw, axes=([1], [2])).transpose(0, 3, 1, 2).reshape(len(g) ** 2, *w.shape[:2], 1, 1)
    return np.concatenate([pack_conv_nhwc16(u[k].astype(np.float32), 1) for k in range(len(g) ** 2)])


def unpack_wino_nhwc16(packed: np.ndarray, shape: list[int], layout: str) -> np.ndarray:
    """The 3x3 weights a Winograd tensor was packed from (G has a left inverse)."""
    n, c = shape[:2]
    g = WINO_G[layout]
    points = len(g) ** 2
    per = len(packed) // points
    u = np.stack([unpack_conv_nhwc16(packed[k * per:(k + 1) * per], [n, c, 1, 1], 1)[..., 0, 0]
                  for k in range(points)])
    gi = np.linalg.pinv(g)
    return np.einsum("ai,ijnc,bj->ncab", gi, u.reshape(len(g), len(g), n, c).astype(np.float64), gi).astype(np.float32)


def pack_khwc(w: np.ndarray) -> np.ndarray:
    """A depthwise weight [C, 1, kh, kw] as the NHWC depthwise kernel reads it: [kh][kw][C]."""
    return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)).reshape(-1)


def _layout_count(entry: dict) -> int:
    shape = entry["shape"]
    if entry["layout"] == "conv_nhwc16":
        groups = entry.get("groups")
        if not isinstance(groups, int) or groups < 1 or len(shape) != 4 or shape[0] % groups:
            raise ValueError("conv_nhwc16 needs a 4-D shape and a 'groups' that divides its first dim")
        return conv_nhwc16_count(shape, groups)
    if entry["layout"] in WINO_G:
        if len(shape) != 4 or shape[2:] != [3, 3]:
            raise ValueError(f"{entry['layout']} needs a 3x3 conv's shape [N, C, 3, 3]")
        return len(WINO_G[entry["layout"]]) ** 2 * conv_nhwc16_count([shape[0], shape[1], 1, 1], 1)
    if entry["layout"] == "khwc" and (len(shape) != 4 or shape[1] != 1):
        raise ValueError("khwc needs a depthwise shape [C, 1, kh, kw]")
    if entry["layout"] == "conv_mr6":
        groups = entry.get("groups")
        if not isinstance(groups, int) or groups < 1 or len(shape) != 4 or shape[0] % groups:
            raise ValueError("conv_mr6 needs a 4-D shape and a 'groups' that divides its first dim")
        phases = entry.get("phases", 1)
        if not isinstance(phases, int) or phases < 1 or (phases > 1 and (groups != 1 or min(shape[2:]) != 1)):
            raise ValueError("conv_mr6 'phases' must be a positive int, above 1 only for a 1-D kernel of one group")
        return conv_mr6_count(shape, groups)
    if entry["layout"] == "bcsr":  # a part of a block-sparse weight (values, row_ptr, columns), stored plain
        block = entry.get("block")
        if not (isinstance(block, list) and block in ([1, 1], [1, 4], [4, 1])):
            raise ValueError("bcsr needs a 'block' of [1, 1], [1, 4] or [4, 1]")
    return math.prod(shape)


def head_bytes(header: bytes) -> bytes:
    """A bundle's bytes up to its data section: preamble (with the header's CRC-32), header, padding."""
    data_offset = (_PREAMBLE.size + len(header) + ALIGN - 1) // ALIGN * ALIGN
    return (_PREAMBLE.pack(MAGIC, FORMAT_VERSION, zlib.crc32(header), len(header), data_offset) + header
            + b"\0" * (data_offset - _PREAMBLE.size - len(header)))


class BundleWriter:
    """Collects tensors and writes one bundle file. checksums=False leaves every tensor's CRC-32 at 0:
    for a bundle built in memory and loaded at once with verify=False (the compiler's trial models)."""

    def __init__(self, checksums: bool = True) -> None:
        self._entries: list[dict] = []
        self._blobs: list[np.ndarray] = []
        self._size = 0
        self._checksums = checksums

    def add(self, name: str, data: np.ndarray, shape: list[int] | None = None, layout: str = "plain",
            **layout_params: Any) -> int:
        """Adds a tensor: int32 and uint16 arrays keep their dtype, anything else is stored as float32.
        `data` is stored as given (already packed for `layout`), `shape` is the logical shape (default:
        data's). Returns the tensor's index for node weight references."""
        data = np.asarray(data)
        dtype = next((k for k, d in DTYPES.items() if d == data.dtype and k != "float32"), "float32")
        blob = np.ascontiguousarray(data, dtype=DTYPES[dtype]).reshape(-1).view(np.uint8)
        entry = {"name": name, "dtype": dtype, "shape": [int(d) for d in (data.shape if shape is None else shape)],
                 "layout": layout, **layout_params, "offset": self._size, "nbytes": len(blob),
                 "crc32": zlib.crc32(blob) if self._checksums else 0}
        if _layout_count(entry) * DTYPES[dtype].itemsize != len(blob):
            raise ValueError(f"tensor {name}: {len(blob)} bytes do not match layout {layout} of shape {entry['shape']}")
        self._entries.append(entry)
        self._blobs.append(blob)
        self._size += (len(blob) + ALIGN - 1) // ALIGN * ALIGN
        return len(self._entries) - 1

    def write(self, path: str | Path, graph: dict, **meta: Any) -> None:
        """Writes the bundle: `graph` holds inputs, outputs and nodes; `meta` (producer, source, report...)
        is stored beside it in the header."""
        with open(path, "wb") as f:
            for chunk in self._chunks(graph, meta):
                f.write(chunk)

    def to_bytes(self, graph: dict, **meta: Any) -> bytes:
        """The bundle write() would write, in memory (for read_bundle / edgesep.load of bytes)."""
        return b"".join(self._chunks(graph, meta))

    def to_bundle(self, graph: dict, **meta: Any) -> "Bundle":
        """The bundle as a Bundle whose tensors are the arrays added, not copied into one buffer (for
        edgesep.load: the compiler's trial models, built by the hundred; a 90 MB copy each was 5% of a
        ResNet-18 plan). Not checked as read_bundle checks a file: it is made here."""
        return _ArrayBundle(Path("<memory>"), FORMAT_VERSION, {"graph": graph, "tensors": self._entries, **meta},
                            b"", 0, list(self._blobs))

    def _chunks(self, graph: dict, meta: dict):
        yield head_bytes(json.dumps({"graph": graph, "tensors": self._entries, **meta}, separators=(",", ":")).encode())
        for blob in self._blobs:
            yield blob
            yield b"\0" * (-len(blob) % ALIGN)


@dataclass
class Bundle:
    """A validated bundle, memory-mapped (or in memory): tensors are zero-copy views of the file."""

    path: Path  # "<memory>" for a bundle read from bytes
    version: int  # the format version the file was written in
    header: dict
    _map: mmap.mmap | bytes
    _data_offset: int

    @property
    def graph(self) -> dict:
        return self.header["graph"]

    @property
    def tensors(self) -> list[dict]:
        return self.header["tensors"]

    def tensor(self, index: int) -> np.ndarray:
        """The stored data of tensor `index` (packed layouts are 1-D, plain ones have their shape)."""
        e = self.tensors[index]
        dtype = DTYPES[e["dtype"]]
        a = np.frombuffer(self._map, dtype, e["nbytes"] // dtype.itemsize, self._data_offset + e["offset"])
        return a.reshape(e["shape"]) if e["layout"] in ("plain", "bcsr") else a

    def weight(self, index: int) -> np.ndarray:
        """Tensor `index` in its logical layout (packed conv weights unpacked to [N, C/groups, kh, kw])."""
        e, a = self.tensors[index], self.tensor(index)
        if e["layout"] == "conv_mr6":
            return unpack_conv_mr6(a, e["shape"], e["groups"], e.get("phases", 1))
        if e["layout"] == "conv_nhwc16":
            return unpack_conv_nhwc16(a, e["shape"], e["groups"])
        if e["layout"] in WINO_G:
            return unpack_wino_nhwc16(a, e["shape"], e["layout"])
        if e["layout"] == "khwc":
            n, _, kh, kw = e["shape"]
            return np.ascontiguousarray(a.reshape(kh, kw, n).transpose(2, 0, 1)).reshape(e["shape"])
        return np.asarray(a)

    def close(self) -> None:
        if not isinstance(self._map, mmap.mmap):
            return  # bytes: freed with the last reference
        try:
            self._map.close()
        except BufferError:
            pass  # arrays still view the map; it closes when the last of them goes


@dataclass
class _ArrayBundle(Bundle):
    """A bundle in memory whose tensor i is the array blobs[i] (BundleWriter.to_bundle)."""

    blobs: list[np.ndarray] | None = None

    def tensor(self, index: int) -> np.ndarray:
        e = self.tensors[index]
        a = self.blobs[index].view(DTYPES[e["dtype"]])
        return a.reshape(e["shape"]) if e["layout"] in ("plain", "bcsr") else a

    def close(self) -> None:
        pass  # (arrays: freed with the last reference)


def _fail(where: str, what: str) -> None:
    raise BundleError(f"{where}: {what}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _str(x: Any) -> str | None:
    """x if it is a string, else None (so that a list given for a name fails a lookup, not hashing)."""
    return x if isinstance(x, str) else None


def _check_dims(where: str, what: str, dims: Any, lo: int, allow_none: bool = False) -> None:
    """A shape: a list of ints in [lo, max_dim] (None too where allow_none), at most max_elements in all."""
    ok = isinstance(dims, list) and all((d is None and allow_none) or (_is_int(d) and lo <= d <= LIMITS["max_dim"])
                                        for d in dims)
    if not ok:
        _fail(where, f"invalid {what} {dims!r} (ints from {lo} to {LIMITS['max_dim']}"
                     f"{', null for a dynamic dim' if allow_none else ''})")
    if math.prod(1 if d is None else d for d in dims) > LIMITS["max_elements"]:
        _fail(where, f"{what} {dims!r} has more than {LIMITS['max_elements']} elements")


def _check_tensors(tensors: Any, data_size: int) -> None:
    if not isinstance(tensors, list):
        _fail("header", "'tensors' must be a list")
    for i, e in enumerate(tensors):
        where = f"tensor {i}"
        if not isinstance(e, dict):
            _fail(where, "must be an object")
        if not isinstance(e.get("name"), str):
            _fail(where, f"name {e.get('name')!r} must be a string")
        where = f"tensor {i} ({e['name']})"
        if _str(e.get("dtype")) not in DTYPES:
            _fail(where, f"dtype {e.get('dtype')!r} is not supported (known: {', '.join(DTYPES)})")
        _check_dims(where, "shape", e.get("shape"), 0)
        if _str(e.get("layout")) not in LAYOUTS:
            _fail(where, f"unknown layout {e.get('layout')!r} (known: {', '.join(LAYOUTS)})")
        off, nbytes = e.get("offset"), e.get("nbytes")
        if not (_is_int(off) and _is_int(nbytes) and off >= 0 and nbytes >= 0 and off % ALIGN == 0):
            _fail(where, "offset and nbytes must be non-negative integers, offset 64-byte aligned")
        try:
            count = _layout_count(e)
        except ValueError as err:
            _fail(where, str(err))
        size = DTYPES[e["dtype"]].itemsize * count
        if nbytes != size:
            _fail(where, f"holds {nbytes} bytes, its layout and shape need {size}")
        if off + nbytes > data_size:
            _fail(where, f"data [{off}, {off + nbytes}) runs past the end of the file's data section ({data_size} bytes)")
        if not _is_int(e.get("crc32")):
            _fail(where, "missing crc32")


def _check_attrs(where: str, op: str, attrs: Any) -> None:
    spec = OPS[op].attrs
    if not isinstance(attrs, dict):
        _fail(where, "attrs must be an object")
    for k, v in attrs.items():
        if k not in spec:
            _fail(where, f"unknown attribute {k!r} for {op}")
        want = spec[k]
        if want is str:
            if not isinstance(v, str):
                _fail(where, f"attribute {k!r} must be a string, got {v!r}")
            continue
        values = v if want is list else [v]
        if not isinstance(values, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
            _fail(where, f"attribute {k!r} must be {'a list of numbers' if want is list else 'a number'}, got {v!r}")
        if want is float:
            if not all(math.isfinite(x) for x in values):
                _fail(where, f"attribute {k!r} must be finite, got {v!r}")
            continue
        lo, hi = attr_range(op, k)
        for x in values:
            if not (isinstance(x, int) or (math.isfinite(x) and x == int(x))) or not lo <= x <= hi:
                _fail(where, f"attribute {k!r}: {x!r} is out of range (integers from {lo} to {hi})")
    if attrs.get("activation", "none") not in ACTIVATIONS:
        _fail(where, f"unknown activation {attrs['activation']!r}")
    if attrs.get("layout", ACTIVATION_LAYOUTS[0]) not in ACTIVATION_LAYOUTS:
        _fail(where, f"unknown layout {attrs['layout']!r} (known: {', '.join(ACTIVATION_LAYOUTS)})")


def _check_graph(graph: Any, tensors: list[dict]) -> None:
    if not isinstance(graph, dict):
        _fail("header", "'graph' must be an object")
    inputs, outputs, nodes = graph.get("inputs"), graph.get("outputs"), graph.get("nodes")
    if not isinstance(inputs, list) or not inputs or not isinstance(outputs, list) or not outputs:
        _fail("graph", "needs non-empty 'inputs' and 'outputs' lists")
    if not isinstance(nodes, list):
        _fail("graph", "'nodes' must be a list")
    defined: set[str] = set()
    for i, v in enumerate(inputs):
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or v.get("dtype") != "float32":
            _fail(f"graph input {i}", "needs a name and dtype float32")
        shape = v.get("shape")
        if not isinstance(shape, list) or not shape:
            _fail(f"graph input {v['name']}", f"invalid shape {shape!r}")
        _check_dims(f"graph input {v['name']}", "shape", shape, 1, allow_none=True)
        if v["name"] in defined:
            _fail(f"graph input {v['name']}", "defined twice")
        defined.add(v["name"])
    for i, n in enumerate(nodes):
        if not isinstance(n, dict):
            _fail(f"node {i}", "must be an object")
        if not isinstance(n.get("name"), str):
            _fail(f"node {i}", f"name {n.get('name')!r} must be a string")
        where = f"node {i} ({n['name']})"
        op = _str(n.get("op"))
        if op not in OPS:
            _fail(where, f"unknown op {n.get('op')!r}")
        spec = OPS[op]
        ins = n.get("inputs")
        if not isinstance(ins, list) or not all(isinstance(x, str) for x in ins):
            _fail(where, "'inputs' must be a list of value names")
        if not spec.min_inputs <= len(ins) <= spec.max_inputs:
            _fail(where, f"{op} takes {spec.min_inputs}..{spec.max_inputs} inputs, has {len(ins)}")
        for x in ins:
            if x not in defined:
                _fail(where, f"reads {x!r} before it is defined (undefined value or a cycle)")
        out = n.get("output")
        if not isinstance(out, str) or out in defined:
            _fail(where, f"output {out!r} is missing or defined twice")
        weights = n.get("weights", {})
        if not isinstance(weights, dict):
            _fail(where, "'weights' must be an object")
        for wname, ti in weights.items():
            if wname not in spec.weights:
                _fail(where, f"{op} takes no weight {wname!r}")
            if not _is_int(ti) or not 0 <= ti < len(tensors):
                _fail(where, f"weight {wname!r} refers to tensor {ti!r}, which does not exist")
            if tensors[ti]["layout"] not in spec.weights[wname].split("|"):
                _fail(where, f"weight {wname!r} has layout {tensors[ti]['layout']!r}")
            if tensors[ti]["dtype"] not in spec.dtypes.get(wname, "float32").split("|"):
                _fail(where, f"weight {wname!r} has dtype {tensors[ti]['dtype']!r}")
        attrs = n.get("attrs", {})
        _check_attrs(where, op, attrs)
        if op == "SparseFc":
            block = attrs.get("block", [1, 1])
            for wname in ("values", "row_ptr", "columns"):
                if wname in weights and tensors[weights[wname]].get("block") != block:
                    _fail(where, f"weight {wname!r} is encoded in blocks {tensors[weights[wname]].get('block')}, "
                                 f"the node says {block}")
        nhwc = attrs.get("layout", "nchw") == "nhwc"
        if op == "SeparableConv":
            strides = attrs.get("strides", [1, 1])
            for wname, stride in zip(("vertical", "horizontal"), strides):
                if wname in weights and tensors[weights[wname]]["layout"] != ("conv_nhwc16" if nhwc else "conv_mr6"):
                    _fail(where, f"weight {wname!r} must be stored as {'conv_nhwc16' if nhwc else 'conv_mr6'} "
                                 f"for layout {'nhwc' if nhwc else 'nchw'}")
                if wname in weights and not nhwc and tensors[weights[wname]].get("phases", 1) != stride:
                    _fail(where, f"weight {wname!r} is stored in {tensors[weights[wname]].get('phases', 1)} tap "
                                 f"phases, the node's stride is {stride}")
        if op == "Conv" and "weight" in weights:
            t = tensors[weights["weight"]]
            if len(t["shape"]) != 4:
                _fail(where, f"conv weight must have 4 dims [N, C/group, kh, kw], has shape {t['shape']}")
            groups = attrs.get("group", 1)
            dw = is_depthwise(t["shape"][1] * groups, t["shape"][0], groups)
            want = ("khwc" if dw else "conv_nhwc16") if nhwc else ("plain" if dw else "conv_mr6")
            if attrs.get("winograd", 0):
                if attrs["winograd"] not in (1, 2, 4):
                    _fail(where, f"winograd must be 2 or 4 (the output tile's side), is {attrs['winograd']}")
                want = wino_layout(attrs["winograd"])
            if t["layout"] != want or (want in ("conv_mr6", "conv_nhwc16") and t.get("groups") != groups):
                _fail(where, f"conv weight must be stored as {want} with this node's group")
        defined.add(out)
    for v in outputs:
        if not isinstance(v, dict) or _str(v.get("name")) not in defined:
            _fail("graph outputs", f"{v!r} is not a defined value")


def read_bundle(path: str | Path | bytes, verify: bool = True) -> Bundle:
    """Opens and validates a bundle: a file, memory-mapped, or the bytes of one (BundleWriter.to_bytes).
    `verify` also checks every tensor's CRC-32 (one pass over the weights). Raises BundleError naming
    the problem for any malformed, truncated or corrupt file."""
    if isinstance(path, bytes):
        m, path, size = path, Path("<memory>"), len(path)
        if size < _PREAMBLE.size:
            _fail(str(path), f"{size} bytes is too short to be a bundle")
    else:
        path = Path(path)
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                if size < _PREAMBLE.size:
                    _fail(str(path), f"{size} bytes is too short to be a bundle")
                m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise BundleError(f"{path}: cannot open: {e}") from e
    try:
        magic, version, header_crc, header_len, data_offset = _PREAMBLE.unpack_from(m, 0)
        if magic != MAGIC:
            _fail(str(path), "not an edgesep bundle (bad magic)")
        if version not in READ_VERSIONS:
            _fail(str(path), f"bundle format version {version}; this edgesep reads versions "
                             f"{', '.join(map(str, READ_VERSIONS))} "
                             f"(recompile the model with this edgesep, or install the edgesep that wrote it)")
        if _PREAMBLE.size + header_len > size or data_offset % ALIGN or not _PREAMBLE.size + header_len <= data_offset <= size:
            _fail(str(path), "header length or data offset out of range (truncated or corrupt file)")
        raw = m[_PREAMBLE.size:_PREAMBLE.size + header_len]
        if version >= 4 and zlib.crc32(raw) != header_crc:
            _fail(str(path), "header checksum mismatch: the file is corrupt")
        if version < 4 and header_crc != 0:
            _fail(str(path), f"reserved preamble field is {header_crc}, not 0 (a corrupt file)")
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: JSON, or an int too long
            _fail(str(path), f"header is not valid JSON: {str(e)[:200]}")
        if not isinstance(header, dict):
            _fail(str(path), "header must be a JSON object")
        _check_tensors(header.get("tensors"), size - data_offset)
        _check_graph(header.get("graph"), header["tensors"])
        bundle = Bundle(path, version, header, m, data_offset)
        if verify:
            for i, e in enumerate(header["tensors"]):
                start = data_offset + e["offset"]
                if zlib.crc32(memoryview(m)[start:start + e["nbytes"]]) != e["crc32"]:
                    _fail(f"tensor {i} ({e['name']})", "checksum mismatch: the file is corrupt")
        return bundle
    except BundleError:
        if isinstance(m, mmap.mmap):
            m.close()
        raise
