"""Seed corpus for the fuzzer and the mutation test: small integer and float .tflite files.

    .venv/bin/python native/fuzz/make_corpus.py [--out DIR] [--max-bytes N] [--opmodels N]
    .venv/bin/python native/fuzz/make_corpus.py --seeds   # rewrite native/fuzz/seeds/ (committed)

The corpus (default native/build-fuzz/corpus/) holds, each under --max-bytes:
  - native/fuzz/seeds/*.tflite: a few multi-op int8 / int16x8 / float32 models built here with TFLiteConverter
    (committed, so `make -C native check` needs no Python);
  - the TFLite Micro models in ../shared/models/tflm (hello_world, micro_speech, seanet add/conv), when present;
  - the smallest --opmodels models of tests/opmodels.py (one builtin each, every quantizer), when present;
  - the zoo's small float models (.cache/zoo, bench.zoo) quantized by edgeq to int8 and int16x8 with
    integer and float I/O, cached in .cache/fuzz/.
Files are named by content hash, so rerunning adds nothing twice.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "native" / "fuzz" / "seeds"
SHARED_TFLM = REPO.parent / "shared" / "models" / "tflm"
ZOO_SMALL = ("keras_cnn_ops", "keras_segmenter", "keras_activations", "keras_mobilenet_block", "keras_attention",
             "selfie_segmentation", "face_detection_short_range")


# ----------------------------------------------------------------------------------------------- seeds


def _seed_specs(tf):
    """Tiny float graphs covering common integer kernels: (name, input shapes, function)."""
    rng = np.random.default_rng(7)

    def const(*shape):
        return tf.constant(rng.normal(0.0, 0.5, size=shape).astype(np.float32))

    w_conv, b_conv = const(3, 3, 3, 8), const(8)
    w_dw = const(3, 3, 8, 1)
    w_fc, b_fc = const(32, 10), const(10)

    def cnn(x):
        y = tf.nn.relu6(tf.nn.conv2d(x, w_conv, 1, "SAME") + b_conv)
        z = tf.nn.depthwise_conv2d(y, w_dw, [1, 1, 1, 1], "SAME")
        y = tf.nn.max_pool2d(y + z, 2, 2, "VALID")
        y = tf.nn.avg_pool2d(y, 2, 2, "VALID")
        y = tf.reshape(y, [1, 32])
        return tf.nn.softmax(tf.matmul(y, w_fc) + b_fc)

    def elementwise(a, b):
        s = tf.concat([tf.sigmoid(a) * b, tf.tanh(a - b), tf.maximum(a, b)], axis=-1)
        s = tf.pad(s, [[0, 0], [1, 0], [0, 1], [0, 0]])
        m = tf.reduce_mean(s, axis=[1, 2], keepdims=True)
        s = tf.transpose(s - m, [0, 2, 1, 3])
        return tf.nn.leaky_relu(s[:, 1:4, ::2, :], 0.1)

    def sequence(x):
        h = tf.matmul(tf.reshape(x, [4, 6]), const(6, 6))
        h = tf.nn.relu(h + h * tf.sigmoid(h))
        return tf.reshape(tf.image.resize(tf.reshape(h, [1, 4, 6, 1]), [8, 12]), [1, 96])

    def misc(x):
        a, b = tf.split(x, 2, axis=-1)
        g = tf.gather(tf.matmul(a, b, transpose_b=True), [2, 0, 3], axis=1)
        h = g * tf.nn.relu6(g + 3.0) / 6.0
        e = tf.squeeze(tf.expand_dims(h, 0), 0)
        return tf.slice(e, [0, 0, 1], [1, 3, 3]), tf.reduce_max(e, axis=-1)

    return [
        ("cnn", [(1, 8, 8, 3)], cnn),
        ("misc", [(1, 4, 8)], misc),
        ("elementwise", [(1, 4, 6, 2), (1, 4, 6, 2)], elementwise),
        ("sequence", [(1, 24)], sequence),
    ]


def _convert(tf, shapes, fn, activations: str, int_io: bool) -> bytes:
    specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
    concrete = tf.function(fn, input_signature=specs).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    rng = np.random.default_rng(0)

    def calib():
        for _ in range(16):
            yield [rng.uniform(-2.0, 2.0, size=s).astype(np.float32) for s in shapes]

    if activations == "float":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calib
    if activations == "int16":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int_io:
        converter.inference_input_type = converter.inference_output_type = (
            tf.int16 if activations == "int16" else tf.int8
        )
    return converter.convert()


def write_seeds(directory: Path = SEEDS) -> list[Path]:
    """Rebuilds the committed seeds: each seed graph as int8 and int16x8, float and integer I/O, and as float32
    (the float kernels)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.random.set_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, shapes, fn in _seed_specs(tf):
        for activations in ("float", "int8", "int16"):
            for int_io in (False, True) if activations != "float" else (False,):
                try:
                    data = _convert(tf, shapes, fn, activations, int_io)
                except Exception as e:  # a converter refusal only drops that variant
                    print(f"skip {name} {activations} int_io={int_io}: {type(e).__name__}: {e}", file=sys.stderr)
                    continue
                scheme = {"float": "f32", "int16": "a16w8"}.get(activations, "int8")
                path = directory / f"{name}_{scheme}{'_intio' if int_io else ''}.tflite"
                path.write_bytes(data)
                written.append(path)
    return written


# ---------------------------------------------------------------------------------------------- corpus


def _zoo_quantized(max_bytes: int) -> list[Path]:
    """The zoo's small float models quantized by edgeq, cached in .cache/fuzz/ (empty without the zoo)."""
    cache = REPO / ".cache" / "fuzz"
    out = []
    try:
        sys.path.insert(0, str(REPO))
        import edgeq
        from bench import zoo
    except Exception as e:
        print(f"zoo seeds skipped: {e}", file=sys.stderr)
        return out
    for name in ZOO_SMALL:
        entry = zoo.ZOO.get(name)
        float_path = zoo.cache_dir() / f"{name}.tflite"
        if entry is None or not float_path.exists():
            continue
        for scheme in ("int8", "int16x8"):
            for io in ("float32", "int"):
                path = cache / f"{name}.{scheme}.{io}.tflite"
                if not path.exists():
                    try:
                        model = edgeq.load(float_path)
                        calib = edgeq.calibration.arrays(*entry.calib(16, 0), batch_size=1)
                        q = edgeq.quantize(model, calib, scheme=scheme, io=io, progress=False)
                    except Exception as e:
                        print(f"zoo {name} {scheme} {io}: {type(e).__name__}: {e}", file=sys.stderr)
                        continue
                    cache.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(q.tflite)
                if path.stat().st_size <= max_bytes:
                    out.append(path)
    return out


def _opmodels(count: int) -> list[Path]:
    """The `count` smallest models of tests/opmodels.py (none when the module is not there)."""
    if count <= 0:
        return []
    try:
        sys.path.insert(0, str(REPO))
        from tests.opmodels import op_models
    except Exception as e:
        print(f"opmodels skipped: {e}", file=sys.stderr)
        return []
    paths = sorted((m.path for m in op_models()), key=lambda p: (p.stat().st_size, p.name))
    return paths[:count]


def corpus_sources(max_bytes: int = 200_000, opmodels: int = 100, zoo: bool = True) -> list[Path]:
    sources = sorted(SEEDS.glob("*.tflite"))
    if SHARED_TFLM.exists():
        sources += sorted(SHARED_TFLM.rglob("*.tflite"))
    sources += _opmodels(opmodels)
    if zoo:
        sources += _zoo_quantized(max_bytes)
    return [p for p in sources if p.stat().st_size <= max_bytes]


def write_corpus(directory: Path, max_bytes: int = 200_000, opmodels: int = 100, zoo: bool = True) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for source in corpus_sources(max_bytes, opmodels, zoo):
        data = source.read_bytes()
        path = directory / f"{hashlib.sha1(data).hexdigest()[:16]}.tflite"
        if not path.exists():
            shutil.copyfile(source, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "native" / "build-fuzz" / "corpus")
    parser.add_argument("--max-bytes", type=int, default=200_000)
    parser.add_argument("--opmodels", type=int, default=100, help="how many of the smallest op models")
    parser.add_argument("--no-zoo", action="store_true", help="leave out the quantized zoo models")
    parser.add_argument("--seeds", action="store_true", help="rewrite the committed seeds instead")
    args = parser.parse_args(argv)
    if args.seeds:
        for path in write_seeds():
            print(f"{path.stat().st_size:8d} {path.relative_to(REPO)}")
        return 0
    written = write_corpus(args.out, args.max_bytes, args.opmodels, not args.no_zoo)
    sizes = [p.stat().st_size for p in written]
    print(f"{len(written)} seeds in {args.out} (largest {max(sizes, default=0)} bytes, total {sum(sizes)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
