"""AWQ channel scaling on a small pre-norm attention block: which inputs it can rescale exactly, that the
float function is unchanged, and that the INT4 block-32 weight error falls where activations have outliers."""

from __future__ import annotations

import numpy as np

import edgeq
from edgeq.algorithms import awq
from edgeq.algorithms.context import AlgorithmContext
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.quant.schemes import get_scheme
from edgeq.runtime import LiteRT

T, C, HEADS = 16, 64, 2
RNG = np.random.default_rng(5)
# Per-channel activation magnitudes with a few outlier channels, as in a transformer's residual stream.
CHANNEL = np.where(np.arange(C) % 13 == 0, 12.0, 1.0).astype(np.float32)
CALIB = [(RNG.normal(size=(1, T, C)) * CHANNEL).astype(np.float32) for _ in range(24)]


def attention_block() -> bytes:
    """x -> MUL gamma -> ADD beta -> Q, K, V (FULLY_CONNECTED) -> 2-head attention (RESHAPE, TRANSPOSE,
    BATCH_MATMUL, SOFTMAX) -> output projection -> GELU -> feed-forward FULLY_CONNECTED."""
    rng = np.random.default_rng(0)
    tensors: list[Tensor] = []

    def add(name: str, shape: tuple[int, ...], data: np.ndarray | None = None, dtype: str = "float32") -> int:
        tensors.append(Tensor(name, shape, dtype, data=data))
        return len(tensors) - 1

    def const(name: str, shape: tuple[int, ...], scale: float = 1.0) -> int:
        return add(name, shape, (rng.normal(size=shape) * scale).astype(np.float32))

    def ints(name: str, values: list[int]) -> int:
        return add(name, (len(values),), np.asarray(values, dtype=np.int32), "int32")

    ops: list[Op] = []

    def op(kind: str, inputs: list[int], shape: tuple[int, ...], options_type: str = "", **options) -> int:
        out = add(f"{kind.lower()}_{len(ops)}", shape)
        ops.append(Op(kind, inputs, [out], options=options, options_type=options_type))
        return out

    def fc(x: int, units: int, shape: tuple[int, ...]) -> int:
        w = const(f"w{len(ops)}", (units, C), 0.2)
        return op("FULLY_CONNECTED", [x, w, const(f"b{len(ops)}", (units,), 0.1)], shape, "FullyConnectedOptions",
                  fusedActivationFunction=0, keepNumDims=True)  # fmt: skip

    x = add("x", (1, T, C))
    gamma, beta = add("gamma", (C,), (1 + 0.3 * rng.normal(size=C)).astype(np.float32)), const("beta", (C,), 0.1)
    h = op("ADD", [op("MUL", [x, gamma], (1, T, C), "MulOptions", fusedActivationFunction=0), beta], (1, T, C),
           "AddOptions", fusedActivationFunction=0)  # fmt: skip
    split, perm = ints("split", [1, T, HEADS, C // HEADS]), ints("perm", [0, 2, 1, 3])

    def heads(t: int) -> int:
        return op("TRANSPOSE", [op("RESHAPE", [t, split], (1, T, HEADS, C // HEADS)), perm], (1, HEADS, T, C // HEADS))

    q, k, v = (heads(fc(h, C, (1, T, C))) for _ in range(3))
    scores = op("BATCH_MATMUL", [q, k], (1, HEADS, T, T), "BatchMatMulOptions", adjX=False, adjY=True)
    probs = op("SOFTMAX", [scores], (1, HEADS, T, T), "SoftmaxOptions", beta=0.2)
    mixed = op("BATCH_MATMUL", [probs, v], (1, HEADS, T, C // HEADS), "BatchMatMulOptions", adjX=False, adjY=False)
    back = op("TRANSPOSE", [mixed, perm], (1, T, HEADS, C // HEADS))
    flat = op("RESHAPE", [back, ints("flat", [T, C])], (T, C))
    out = fc(flat, C, (T, C))
    ff = fc(op("GELU", [out], (T, C), "GeluOptions", approximate=False), C, (T, C))
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[x], outputs=[ff]))


def _outputs(model: bytes) -> np.ndarray:
    runtime = LiteRT(model)
    return np.stack([runtime.run([x])[0] for x in CALIB])


def test_groups_are_the_exact_folds():
    graph = edgeq.load(attention_block()).graph
    groups = {g.kind: g for g in awq.find_groups(graph)}
    assert sorted(groups) == ["affine", "linear"]  # the GELU in front of the last FULLY_CONNECTED blocks a fold
    assert [graph.ops[i].kind for i in groups["affine"].consumers] == ["FULLY_CONNECTED"] * 3
    names = {graph.tensors[t].name for t, _ in groups["affine"].scaled}
    assert names == {"gamma", "beta"}
    # V's output channels reach the output projection in the same order (heads split and joined back).
    np.testing.assert_array_equal(groups["linear"].channel, np.arange(C))


def test_float_function_is_kept_and_int4_error_falls():
    model = edgeq.load(attention_block())
    ctx = AlgorithmContext(graph=model.graph.copy(), scheme=get_scheme("w4-block32"), samples=[[x] for x in CALIB],
                           render=lambda g, p: (g, b"", b""), progress=False)  # fmt: skip
    before = _outputs(model.host_tflite)
    groups = awq.find_groups(ctx.graph)
    stats = awq.statistics(ctx, [g.tensor for g in groups])
    affine = next(g for g in groups if g.kind == "affine")
    weights = [ctx.graph.tensors[ctx.graph.ops[i].inputs[1]].data.astype(np.float64) for i in affine.consumers]
    h = stats[affine.tensor][0]
    plain = awq.group_error(weights, h, np.ones(C), ctx.scheme)
    notes = awq.run(ctx)
    assert notes[0].startswith("AWQ: ")
    after = _outputs(ctx.float_host_tflite())
    # Powers of two: the rescale is exact, every output bit-equal.
    np.testing.assert_array_equal(after, before)
    scaled = [ctx.graph.tensors[ctx.graph.ops[i].inputs[1]].data.astype(np.float64) for i in affine.consumers]
    gamma = next(t for t in ctx.graph.tensors if t.name == "gamma").data
    s = (scaled[0] / weights[0])[0]
    np.testing.assert_allclose(gamma, model.graph.tensors[1].data / s, rtol=1e-6)
    # The outlier channels get larger weights; the block-quantized output error of Q, K, V falls by a third+.
    assert np.all(s[CHANNEL > 1] > 1)
    rescaled = awq.group_error(scaled, h / np.outer(s, s), np.ones(C), ctx.scheme)
    assert rescaled < 0.67 * plain


def test_quantize_with_awq_is_closer_to_float():
    model = edgeq.load(attention_block())
    reference = _outputs(model.host_tflite)
    calib = edgeq.calibration.arrays(np.concatenate(CALIB))

    def sqnr(algorithms: list[str]) -> float:
        qm = edgeq.quantize(model, calib, scheme="w4-block32", allow_float_ops=True, algorithms=algorithms,
                            progress=False)  # fmt: skip
        error = _outputs(qm.host_tflite) - reference
        return float(10 * np.log10(np.sum(reference**2) / np.sum(error**2)))

    assert sqnr(["awq"]) > sqnr([]) + 1.0  # measured 11.3 vs 9.6 dB
