"""Bit-exactness of edgeq's C interpreter against LiteRT BUILTIN_REF on the zoo, quantized every way:
edgeq int8 and int16x8, ai-edge-quantizer static w8a8 and w8a16, TFLiteConverter int8 and int16x8 (the
Keras models, which it converts from source).

    python -m bench.native_zoo [--models a,b] [--quantizers edgeq_int8,...] [--samples 2] [--json]

Each integer model is verified op by op (every intermediate tensor) on --samples held-out real inputs
(photo crops or Fashion-MNIST test images, quantized at the model's boundary) and as many random
full-range inputs. Integer models are built once into the zoo cache. A model that keeps float ops (a
custom op, or an op without an int16 kernel under int16x8) is not an integer model: its row says which op.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import edgeq
from bench import peers, zoo
from edgeq.errors import EdgeqError

CALIB = 16

Builder = Callable[[edgeq.FloatModel, list[np.ndarray], zoo.ZooModel], bytes]


def _edgeq(scheme: str) -> Builder:
    def build(model: edgeq.FloatModel, calib: list[np.ndarray], entry: zoo.ZooModel) -> bytes:
        return edgeq.quantize(model, edgeq.calibration.arrays(*calib), scheme=scheme, allow_float_ops=True,
                              progress=False).tflite

    return build


QUANTIZERS: dict[str, Builder] = {
    "edgeq_int8": _edgeq("int8"),
    "edgeq_int16x8": _edgeq("int16x8"),
    "aeq_w8a8": lambda m, c, e: peers.ai_edge_quantizer_static(m, c, e, activation_bits=8),
    "aeq_w8a16": lambda m, c, e: peers.ai_edge_quantizer_static(m, c, e, activation_bits=16),
    "tflite_int8": lambda m, c, e: peers.tflite_converter_ptq(m, c, e, int16=False),
    "tflite_int16x8": lambda m, c, e: peers.tflite_converter_ptq(m, c, e, int16=True),
}


@dataclass
class Row:
    model: str
    quantizer: str
    ops: int = 0
    values: int = 0
    bit_exact: bool | None = None
    detail: str = ""  # first divergence, or why the model was not verified
    seconds: float = 0.0


def integer_model(name: str, quantizer: str) -> Path:
    """The zoo model `name` quantized by `quantizer`, built once into the zoo cache."""

    def build(tmp: Path) -> None:
        entry = zoo.get(name)
        model = edgeq.load(entry.path(), name=name)
        tmp.write_bytes(QUANTIZERS[quantizer](model, entry.calib(CALIB, 0), entry))

    return zoo._cached(f"native/{name}.{quantizer}.tflite", build)


def applicable(name: str, quantizer: str) -> bool:
    return not quantizer.startswith("tflite_") or zoo.get(name).keras_model is not None


def verify_row(name: str, quantizer: str, samples: int) -> Row:
    from edgeq.verify.bitexact import verify

    row = Row(name, quantizer)
    start = time.perf_counter()
    try:
        path = integer_model(name, quantizer)
        real = zoo.get(name).eval(samples, 1)
        inputs = [[x[i : i + 1] for x in real] for i in range(samples)]
        for result in (verify(path, inputs=inputs), verify(path, samples=samples, seed=7)):
            row.ops = result.ops
            row.values += result.values_compared
            row.bit_exact = result.bit_exact if row.bit_exact is None else row.bit_exact and result.bit_exact
            if not result.bit_exact and not row.detail:
                row.detail = result.summary()
    except EdgeqError as e:
        row.detail = f"{type(e).__name__}: {e}"
    except Exception as e:  # a peer quantizer refusing a model is a result to record
        row.detail = f"{quantizer} failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    row.seconds = round(time.perf_counter() - start, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(zoo.ZOO))
    p.add_argument("--quantizers", default=",".join(QUANTIZERS))
    p.add_argument("--samples", type=int, default=2, help="real and random samples each")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = []
    for name in args.models.split(","):
        for quantizer in args.quantizers.split(","):
            if not applicable(name, quantizer):
                continue
            row = verify_row(name, quantizer, args.samples)
            rows.append(row)
            if not args.json:
                verdict = {True: "bit-exact", False: "DIFFERS", None: "not run"}[row.bit_exact]
                print(f"{name:28s} {quantizer:15s} {verdict:9s} ops {row.ops:4d} values {row.values:10d} "
                      f"{row.seconds:6.1f}s {row.detail[:150]}", flush=True)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    return 0 if all(r.bit_exact is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
