"""The Core ML lowering transposes a value into a layout once, however many ops read it so: an NHWC input read
by two convolutions is one transpose in the package (coremltools' default passes merge such duplicates, so
without this its re-saved packages were smaller than edgeq's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import edgeq
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.verify.mil_eval import MILProgram


def _two_branch_model() -> bytes:
    """[1, 6, 6, 8] -> CONV_2D 1x1 8->4 and CONV_2D 3x3 8->4 (both read the input) -> ADD."""
    rng = np.random.default_rng(0)
    tensors = [Tensor("x", (1, 6, 6, 8), "float32")]
    ops: list[Op] = []

    def add(name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        tensors.append(Tensor(name, shape, "float32", data=data))
        return len(tensors) - 1

    outs = []
    for name, k in (("a", 1), ("b", 3)):
        w = add(f"{name}/w", (4, k, k, 8), rng.normal(size=(4, k, k, 8)).astype(np.float32))
        b = add(f"{name}/b", (4,), np.zeros(4, np.float32))
        y = add(name, (1, 6, 6, 4))
        options = {"padding": 0, "strideW": 1, "strideH": 1, "fusedActivationFunction": 0,
                   "dilationWFactor": 1, "dilationHFactor": 1}  # fmt: skip
        ops.append(Op("CONV_2D", [0, w, b], [y], options=options, options_type="Conv2DOptions"))
        outs.append(y)
    s = add("sum", (1, 6, 6, 4))
    ops.append(Op("ADD", outs, [s], options={"fusedActivationFunction": 0}, options_type="AddOptions"))
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[s]))


def test_input_read_by_two_convolutions_is_transposed_once(tmp_path: Path) -> None:
    model = edgeq.load(_two_branch_model())
    x = np.random.default_rng(1).normal(size=(4, 1, 6, 6, 8)).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x[:, 0]), scheme="int8", progress=False)
    for mode in ("fp16", "w8a8"):
        prog = MILProgram.load(qm.export_coreml(tmp_path / f"{mode}.mlpackage", mode=mode))
        transposes = [o for o in prog._ops if o.type == "transpose"]
        assert [o.name for o in transposes] == ["x_T", "sum_T"]  # the input into NCHW once, the output back
    r = edgeq.verify_coreml(tmp_path / "w8a8.mlpackage", qm, data=edgeq.calibration.arrays(x[:2, 0]), samples=2)
    assert r.weights_exact and r.outputs[0].sqnr_vs_integer_db > 40
