"""Latency of edgeq's C interpreter against TFLite Micro, LiteRT BUILTIN_REF and LiteRT default kernels
(XNNPACK), one thread each, on int8 models quantized by edgeq; arena bytes against TFLite Micro's.

    python -m bench.native_speed [--models efficientnet_lite0,mobilenet_v2,hand_landmark_lite] [--repeats 7]

Every runtime gets the same int8 model and the same input; each latency is the median of --repeats
invokes after one warm-up invoke. Before timing, edgeq's outputs are checked bit-exact against BUILTIN_REF
on that input (the whole point: faster while computing the same bits). TFLite Micro's arena figure is its
RecordingMicroAllocator's "head" (activations and scratch, the counterpart of edgeq's arena) and "total"
(head plus the persistent tail; edgeq's counterpart adds its load-time allocations: tables, multipliers,
repacked weights). Both read weights in place from the model buffer.

MobileNetV2 is keras.applications' architecture with its default random initialisation (no weights are
downloaded) without its classifier head (a random net's flat logits make LiteRT's reference int8 SOFTMAX
abort once 512 or more classes tie), quantized with photo crops: latency does not depend on trained
weights. hand_landmark_lite is MediaPipe's trained MobileNetV2-style model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import zoo
from bench.photos import photo_crops

CALIB = 32


def _quantized(name: str) -> bytes:
    """The int8 model, built once into the zoo cache."""
    import edgeq

    def build(tmp: Path) -> None:
        if name == "mobilenet_v2":
            import keras

            keras.utils.set_random_seed(0)
            net = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), include_top=False,
                                                 pooling="avg")
            model = edgeq.from_keras(net)
            calib = edgeq.calibration.arrays(photo_crops("calib", CALIB, 224, 0).astype(np.float32) / 127.5 - 1.0)
        else:
            entry = zoo.get(name)
            model = edgeq.load(entry.path(), name=name)
            calib = edgeq.calibration.arrays(*entry.calib(CALIB, 0))
        tmp.write_bytes(edgeq.quantize(model, calib, scheme="int8", progress=False).tflite)

    return zoo._cached(f"{name}.edgeq_int8.tflite", build).read_bytes()


def _median_ms(invoke: Callable[[], object], repeats: int) -> float:
    invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        invoke()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _tflm_arena(model: bytes, x: np.ndarray) -> tuple[object, dict[str, int]]:
    """A TFLite Micro interpreter plus its recorded arena use (printed by C++ to stderr, so read via fd 2)."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=64 << 20)
    interpreter.set_input(x, 0)
    interpreter.invoke()
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            interpreter.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    arena = {k: int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text)}
    return interpreter, arena


def measure(name: str, repeats: int) -> dict:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeq.verify.native import NativeModel

    model = _quantized(name)
    native = NativeModel(model)
    rng = np.random.default_rng(0)
    t = native.inputs[0]
    x = rng.uniform(-1, 1, size=t.shape).astype(t.dtype) if t.dtype == np.float32 else rng.integers(
        -128, 128, size=t.shape).astype(t.dtype)

    def litert(resolver: OpResolverType) -> Interpreter:
        interpreter = Interpreter(model_content=model, experimental_op_resolver_type=resolver, num_threads=1)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        return interpreter

    ref = litert(OpResolverType.BUILTIN_REF)
    xnn = litert(OpResolverType.AUTO)
    ref.invoke()
    expected = ref.get_tensor(ref.get_output_details()[0]["index"])
    (got,) = native.run([x])[:1]
    bit_exact = bool(np.array_equal(got.view(np.uint8), expected.view(np.uint8)))
    tflm, tflm_arena = _tflm_arena(model, x)

    native.set_inputs([x])
    ms = {
        "edgeq": _median_ms(native.invoke, repeats),
        "tflm": _median_ms(tflm.invoke, max(3, repeats // 2)),
        "litert_ref": _median_ms(ref.invoke, max(3, repeats // 2)),
        "xnnpack": _median_ms(xnn.invoke, repeats),
    }
    return {
        "model": name,
        "ops": len(native.ops),
        "bit_exact_vs_ref": bit_exact,
        "latency_ms": {k: round(v, 2) for k, v in ms.items()},
        "speedup_vs_tflm": round(ms["tflm"] / ms["edgeq"], 2),
        "speedup_vs_litert_ref": round(ms["litert_ref"] / ms["edgeq"], 2),
        "ratio_to_xnnpack": round(ms["edgeq"] / ms["xnnpack"], 2),
        "arena_bytes": {"edgeq": native.arena_bytes, "tflm_head": tflm_arena.get("head"),
                        "edgeq_persistent": native.persistent_bytes, "tflm_tail": tflm_arena.get("tail"),
                        "edgeq_total": native.arena_bytes + native.persistent_bytes,
                        "tflm_total": tflm_arena.get("total")},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="efficientnet_lite0,mobilenet_v2,hand_landmark_lite")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = [measure(name, args.repeats) for name in args.models.split(",")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'model':20s} {'exact':>5s} {'edgeq ms':>9s} {'TFLM ms':>9s} {'REF ms':>9s} {'XNNPACK ms':>10s} "
          f"{'xTFLM':>6s} {'xREF':>6s} {'/XNN':>6s} {'arena':>9s} {'TFLM head':>10s} {'total':>9s} {'TFLM total':>10s}")
    for r in rows:
        ms = r["latency_ms"]
        print(f"{r['model']:20s} {r['bit_exact_vs_ref']!s:>5s} {ms['edgeq']:9.2f} {ms['tflm']:9.2f} "
              f"{ms['litert_ref']:9.2f} {ms['xnnpack']:10.2f} {r['speedup_vs_tflm']:6.1f} "
              f"{r['speedup_vs_litert_ref']:6.1f} {r['ratio_to_xnnpack']:6.2f} {r['arena_bytes']['edgeq']:9d} "
              f"{r['arena_bytes']['tflm_head'] or 0:10d} {r['arena_bytes']['edgeq_total']:9d} "
              f"{r['arena_bytes']['tflm_total'] or 0:10d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
