"""edgeq int8 side by side with its peers on every zoo model, same float model, same calibration samples.

Peers: TFLiteConverter full-integer PTQ (Keras models) and ai-edge-quantizer's static w8a8 recipe (every
model). Each peer gets its best chance: fp16 weights folded to fp32 and a signature added where the
model has none (ai-edge-quantizer needs both). A peer that still fails is recorded with its message.

    python -m bench.peers [--models a,b] [--calib 240] [--eval 480] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

import edgeq
from bench import zoo
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.frontends.tflite import FloatModel
from edgeq.ir.tflite_reader import read_tflite
from edgeq.verify.fidelity import compare


@dataclass
class Row:
    model: str
    recipe: str
    sqnr_db: float | None = None  # pooled over all outputs, as baselines.md measures
    min_output_sqnr_db: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    size_ratio: float | None = None
    seconds: float | None = None
    error: str | None = None


def with_signature(model: FloatModel) -> bytes:
    """The normalised float model (fp16 folded) with a signature named after its tensors."""
    g = model.graph.copy()
    if not g.signature_inputs:
        g.signature_key = "serving_default"
        g.signature_inputs = {g.tensors[t].name: t for t in g.inputs}
        g.signature_outputs = {g.tensors[t].name: t for t in g.outputs}
    return write_tflite(g)


def _host(data: bytes) -> bytes:
    """The same stand-ins for custom ops that edgeq's own measurement uses, so every recipe runs on the host."""
    host = host_graph(read_tflite(data))
    return data if host is None else write_tflite(host)


def edgeq_int8(model: FloatModel, calib: list[np.ndarray], entry: zoo.ZooModel) -> bytes:
    return edgeq.quantize(model, edgeq.calibration.arrays(*calib), scheme="int8", progress=False).tflite


def ai_edge_quantizer_w8a8(model: FloatModel, calib: list[np.ndarray], entry: zoo.ZooModel) -> bytes:
    return ai_edge_quantizer_static(model, calib, entry, activation_bits=8)


def ai_edge_quantizer_static(model: FloatModel, calib: list[np.ndarray], entry: zoo.ZooModel,
                             activation_bits: int = 8) -> bytes:
    """ai-edge-quantizer's static recipe: int8 weights, int8 (w8a8) or int16 (w8a16) activations."""
    from ai_edge_quantizer import quantizer, recipe

    data = with_signature(model)
    g = edgeq.load(data).graph
    key = g.signature_key or "serving_default"
    names = list(g.signature_inputs) or [g.tensors[t].name for t in g.inputs]
    samples = [{n: x[i : i + 1] for n, x in zip(names, calib, strict=True)} for i in range(calib[0].shape[0])]
    qt = quantizer.Quantizer(data)
    qt.load_quantization_recipe(recipe.static_wi8_ai8() if activation_bits == 8 else recipe.static_wi8_ai16())
    with contextlib.redirect_stdout(io.StringIO()):
        result = qt.calibrate({key: samples})
        return bytes(qt.quantize(result).quantized_model)


def tflite_converter_ptq(model: FloatModel, calib: list[np.ndarray], entry: zoo.ZooModel, int16: bool = False) -> bytes:
    """TFLiteConverter full-integer PTQ from the Keras model: int8, or int16 activations with int8 weights."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if entry.keras_model is None:
        raise NotImplementedError("TFLiteConverter PTQ needs the Keras model; this one is not from Keras")
    keras_model = entry.keras_model()
    specs = [tf.TensorSpec((1, *x.shape[1:]), tf.float32) for x in calib]
    fn = tf.function(lambda *xs: keras_model(list(xs) if len(xs) > 1 else xs[0], training=False), input_signature=specs)
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i : i + 1] for x in calib] for i in range(calib[0].shape[0]))
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 if int16
        else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
    ]
    return converter.convert()


RECIPES: dict[str, Callable[[FloatModel, list[np.ndarray], zoo.ZooModel], bytes]] = {
    "edgeq int8": edgeq_int8,
    "TFLiteConverter PTQ": tflite_converter_ptq,
    "ai-edge-quantizer w8a8": ai_edge_quantizer_w8a8,
}


def run(names: list[str], n_calib: int, n_eval: int) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        entry = zoo.get(name)
        model = edgeq.load(entry.path(), name=name)
        calib = entry.calib(n_calib, 0)
        evaluation = entry.eval(n_eval, 1)
        for recipe_name, fn in RECIPES.items():
            if recipe_name == "TFLiteConverter PTQ" and entry.keras_model is None:
                continue
            row = Row(model=name, recipe=recipe_name)
            start = time.perf_counter()
            try:
                quantized = fn(model, calib, entry)
                row.seconds = time.perf_counter() - start
                report = compare(model.graph, model.tflite, quantized, edgeq.calibration.arrays(*evaluation), layers=0)
                row.sqnr_db = report.pooled_sqnr_db
                row.min_output_sqnr_db = report.sqnr_db
                row.cosine = min(o.cosine for o in report.outputs)
                row.top1_agreement = report.top1_agreement if entry.classifier else None
                row.size_ratio = len(quantized) / len(model.tflite)
            except Exception as e:  # a peer failing is a result to record, not a crash
                row.error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            rows.append(row)
            print(_format(row), flush=True)
    return rows


def _format(r: Row) -> str:
    if r.error:
        return f"{r.model:<28} {r.recipe:<24} FAILED {r.error}"
    top1 = "" if r.top1_agreement is None else f"{r.top1_agreement:.3f}"
    return (
        f"{r.model:<28} {r.recipe:<24} SQNR {r.sqnr_db:6.2f} dB (worst output {r.min_output_sqnr_db:6.2f})  "
        f"cos {r.cosine:.5f}  top-1 {top1:>5}  "
        f"size {r.size_ratio:.3f}  {r.seconds:6.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(zoo.ZOO))
    ap.add_argument("--calib", type=int, default=240)
    ap.add_argument("--eval", type=int, default=480)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    rows = run(args.models.split(","), args.calib, args.eval)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
