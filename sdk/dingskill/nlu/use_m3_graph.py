"""The use-m3 encoder's forward pass above the per-token rows as one ONNX Runtime graph.

:class:`~dingskill.nlu.use_m3.UseM3Encoder` gathers each token's cached row (embedding,
projection, first-convolution products) in numpy; everything after it (the two
convolutions of the three CNN branches, the layer norm, the pooling and the dense layers)
is about 60 numpy calls per batch. Here the same computation is one graph, built in memory
from the weights already loaded (nothing is read from disk, no custom operator), run on
one thread by ONNX Runtime:

* its matrix products use the weights packed once at load (numpy's BLAS packs them again
  on every call): 1.2-1.7x faster at this model's sizes;
* a batch is one call that releases the GIL once, instead of 60 calls that each take it
  back (and wait for it while the event loop holds it).

The result equals the numpy path up to float rounding (summation order); the tests compare
both on Chinese and English sentences. The graph's bytes are written here directly in ONNX's
protobuf format (:class:`_Writer`), so only ``onnxruntime`` is needed. Without it, or with
``DINGSKILL_USE_M3_GRAPH=0``, the numpy path runs.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["GraphForward", "build_forward"]

ENV = "DINGSKILL_USE_M3_GRAPH"


def build_forward(enc, emb: int, cnn: int, orders, max_left: int) -> GraphForward | None:
    """A :class:`GraphForward` for the encoder ``enc``'s weights, or None when ONNX Runtime
    is not installed or ``DINGSKILL_USE_M3_GRAPH`` is ``0``."""
    if os.environ.get(ENV, "1").strip() == "0":
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    return GraphForward(enc, emb, cnn, orders, max_left)


class GraphForward:
    """``run(rows, idx, starts, lens)``: the sentence vectors (n_sent x 512, unit length) of
    a batch, from its tokens' cached rows (n_tok x row), each token's window positions
    ``idx`` (n_tok x 5, ``n_tok`` for outside its sentence) and the sentences' first token
    and length."""

    def __init__(self, enc, emb: int, cnn: int, orders, max_left: int) -> None:
        import onnxruntime as ort

        model = _model(enc, emb, cnn, orders, max_left)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    def run(
        self, rows: np.ndarray, idx: np.ndarray, starts: np.ndarray, lens: np.ndarray
    ) -> np.ndarray:
        n_tok, n_sent = rows.shape[0], len(lens)
        pool = np.zeros((n_sent, n_tok), dtype=np.float32)
        owner = np.repeat(np.arange(n_sent), lens)
        pool[owner, np.arange(n_tok)] = 1.0
        flens = lens.astype(np.float32)[:, None]
        feeds = {
            "rows": rows,
            "idx": idx,
            "pool": pool,
            "flens": flens,
            "inv_sqrt_len": np.reciprocal(np.sqrt(flens)),
        }
        return self._sess.run(None, feeds)[0]


def _model(enc, emb: int, cnn: int, orders, max_left: int) -> bytes:
    """The ONNX model (opset 17) of the forward pass with ``enc``'s weights as initializers,
    as bytes (:class:`_Writer`)."""
    g = _Writer()
    node, const, f32 = g.node, g.const, np.float32

    def cols(start: int, stop: int) -> str:  # rows[:, start:stop]
        ends = [const(np.array([v], np.int64)) for v in (start, stop, 1)]
        return node("Slice", ["rows", *ends])

    zero = const(np.zeros((1, cnn), f32))
    branches = []
    off = emb + len(orders) * cnn
    for i, (n, left) in enumerate(orders):
        xs = cols(emb + i * cnn, emb + (i + 1) * cnn)
        h = None
        for k in range(n):  # first convolution: the cached per-offset products, shifted
            padded = node("Concat", [cols(off, off + cnn), zero], axis=0)
            at = node("Gather", ["idx", const(np.array(max_left - left + k, np.int64))], axis=1)
            part = node("Gather", [padded, at], axis=0)
            h = part if h is None else node("Add", [h, part])
            off += cnn
        h = node("Relu", [node("Add", [h, const(enc._b1[i].astype(f32))])])
        h = node("Add", [h, xs])
        bounds = (max_left - left, max_left - left + n, 1)
        window = node("Slice", ["idx", *(const(np.array([v], np.int64)) for v in bounds)])
        stacked = node("Gather", [node("Concat", [h, zero], axis=0), window], axis=0)
        flat = node("Reshape", [stacked, const(np.array([-1, n * cnn], np.int64))])
        c2 = node("MatMul", [flat, const(enc._w2[i].astype(f32))])
        c2 = node("Relu", [node("Add", [c2, const(enc._b2[i].astype(f32))])])
        branches.append(node("Add", [c2, h]))
    feats = node("Concat", [cols(0, emb), *branches], axis=1)
    feats = node(
        "LayerNormalization",
        [feats, const(enc._ln_g.astype(f32)), const(enc._ln_b.astype(f32))],
        axis=-1,
        epsilon=float(enc._eps),
    )
    mean = node("MatMul", [node("MatMul", ["pool", feats]), const(enc._cnn_W.astype(f32))])
    mean = node("Add", [mean, node("Mul", ["flens", const(enc._cnn_b.astype(f32))])])
    mean = node("Mul", [mean, "inv_sqrt_len"])
    d0, d1, d2, d3 = (const(d.astype(f32)) for d in enc._d)
    y0 = node("Relu", [node("MatMul", [mean, d0])])
    y1 = node("Add", [node("MatMul", [mean, const(enc._p1.astype(f32))]), node("MatMul", [y0, d1])])
    y1 = node("Relu", [y1])
    y2 = node("Relu", [node("MatMul", [y1, d2])])
    z = node("Add", [node("MatMul", [y1, const(enc._p3.astype(f32))]), node("MatMul", [y2, d3])])
    z = node("Tanh", [z])
    sq = node("ReduceSumSquare", [z], axes=[1], keepdims=1)
    norm = node("Sqrt", [node("Max", [sq, const(np.array(enc._eps, f32))])])
    node("Div", [z, norm], out="vectors")
    inputs = [
        ("rows", _FLOAT, ["n_tok", "row"]),
        ("idx", _INT64, ["n_tok", "window"]),
        ("pool", _FLOAT, ["n_sent", "n_tok"]),
        ("flens", _FLOAT, ["n_sent", 1]),
        ("inv_sqrt_len", _FLOAT, ["n_sent", 1]),
    ]
    return g.model("use_m3_forward", inputs, [("vectors", _FLOAT, ["n_sent", emb])], opset=17)


# ONNX's protobuf schema (onnx/onnx.proto): the field numbers and enum values used here
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType
_DTYPES = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64}


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: two's complement, ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # wire type 2: length-delimited
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:  # wire type 0: varint
    return _varint(number << 3) + _varint(value)


def _str(number: int, text: str) -> bytes:
    return _field(number, text.encode())


class _Writer:
    """Writes an ONNX ``ModelProto`` in protobuf's wire format directly: the few messages a
    plain graph needs (model, graph, node, attribute, tensor, value info), so the runtime
    needs ``onnxruntime`` only (the ``onnx`` package takes 0.6 s to import; the tests check
    these bytes with it)."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value: np.ndarray) -> str:
        """An initializer holding ``value`` (float32 or int64); its name."""
        value = np.asarray(value)  # (not ascontiguousarray: it makes a scalar 1-D)
        name = self._name("c")
        body = b"".join(_int(1, d) for d in value.shape)
        body += _int(2, _DTYPES[value.dtype]) + _str(8, name) + _field(9, value.tobytes())
        self.inits.append(body)
        return name

    def node(self, op: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        """A node ``op(inputs)`` with attributes (float, int or list of ints); its output."""
        out = out or self._name("t")
        body = b"".join(_str(1, i) for i in inputs) + _str(2, out) + _str(4, op)
        for key, value in attrs.items():
            if isinstance(value, float):
                attr = _str(1, key) + _varint(2 << 3 | 5) + np.float32(value).tobytes()
                attr += _int(20, _ATTR_FLOAT)
            elif isinstance(value, int):
                attr = _str(1, key) + _int(3, value) + _int(20, _ATTR_INT)
            else:
                attr = _str(1, key) + b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)
            body += _field(5, attr)
        self.nodes.append(body)
        return out

    @staticmethod
    def _value_info(name: str, dtype: int, dims: list) -> bytes:
        shape = b"".join(_field(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
        tensor_type = _int(1, dtype) + _field(2, shape)
        return _str(1, name) + _field(2, _field(1, tensor_type))

    def model(self, name: str, inputs: list, outputs: list, opset: int) -> bytes:
        graph = b"".join(_field(1, n) for n in self.nodes) + _str(2, name)
        graph += b"".join(_field(5, t) for t in self.inits)
        graph += b"".join(_field(11, self._value_info(*i)) for i in inputs)
        graph += b"".join(_field(12, self._value_info(*o)) for o in outputs)
        opset_id = _str(1, "") + _int(2, opset)
        return _int(1, 8) + _field(8, opset_id) + _field(7, graph)  # ir_version 8
