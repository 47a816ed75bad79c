"""Builtin stand-ins for custom ops whose semantics are public, so LiteRT can run the model on the host.

The artifact keeps the custom op (the app's runtime provides it, e.g. MediaPipe's); only calibration
and fidelity measurement run the stand-in. Tensor indices are preserved, so observers and comparisons
address the same tensors in both graphs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from edgeq.errors import UnsupportedOpError
from edgeq.ir.graph import Graph, Op, Tensor

# TfLitePadding (kTfLitePaddingSame = 1, kTfLitePaddingValid = 2) -> schema Padding (SAME = 0, VALID = 1).
_PADDING = {1: 0, 2: 1}


def _transpose_conv_bias(graph: Graph, index: int, op: Op) -> Op:
    """MediaPipe's Convolution2DTransposeBias (mediapipe/util/tflite/operations/transpose_conv_bias.cc):
    TRANSPOSE_CONV with a bias input; custom options are the raw TfLiteTransposeConvParams struct
    {padding, stride_width, stride_height} as little-endian int32."""
    if len(op.custom_options) < 12 or len(op.inputs) != 3:
        raise UnsupportedOpError(f"{graph.where(index)}: Convolution2DTransposeBias with unexpected options/inputs")
    padding, stride_w, stride_h = struct.unpack_from("<3i", op.custom_options)
    if padding not in _PADDING:
        raise UnsupportedOpError(f"{graph.where(index)}: Convolution2DTransposeBias padding code {padding}")
    out_shape = graph.tensors[op.outputs[0]].shape
    shape_t = graph.add_tensor(
        Tensor(
            name=f"{graph.tensors[op.outputs[0]].name}/output_shape",
            shape=(len(out_shape),),
            dtype="int32",
            data=np.asarray(out_shape, dtype=np.int32),
        )
    )
    data, weights, bias = op.inputs
    return Op(
        kind="TRANSPOSE_CONV",
        inputs=[shape_t, weights, data, bias],
        outputs=list(op.outputs),
        options={"padding": _PADDING[padding], "strideW": stride_w, "strideH": stride_h, "fusedActivationFunction": 0},
        options_type="TransposeConvOptions",
        version=1,
    )


HOST_STANDINS: dict[str, Callable[[Graph, int, Op], Op]] = {
    "Convolution2DTransposeBias": _transpose_conv_bias,
}


def host_graph(graph: Graph) -> Graph | None:
    """A copy runnable by LiteRT's builtin ops, or None when the graph has no custom op to replace."""
    customs = [i for i, op in enumerate(graph.ops) if op.kind == "CUSTOM"]
    if not customs:
        return None
    host = graph.copy()
    for i in customs:
        op = host.ops[i]
        standin = HOST_STANDINS.get(op.custom_code)
        if standin is None:
            raise UnsupportedOpError(
                f"{graph.where(i)}: custom op '{op.custom_code}' cannot run on the host (LiteRT has no kernel "
                f"for it and edgeq knows no builtin equivalent), so the float model cannot be calibrated; "
                f"known custom ops: {', '.join(sorted(HOST_STANDINS))}"
            )
        host.ops[i] = standin(host, i, op)
    return host
