"""Keras / SavedModel frontend: TFLiteConverter in float mode (its quantizer is a peer, not a part)."""

from __future__ import annotations

import os

from edgeq.errors import FrontendError
from edgeq.frontends.tflite import FloatModel, load


def from_keras(model, input_shapes: list[tuple[int, ...]] | None = None, name: str | None = None) -> FloatModel:
    """Convert a Keras model with a static batch of 1 (dynamic batch adds SHAPE/PACK ops to the graph).

    `input_shapes` overrides the inputs' shapes (batch included) where Keras leaves dimensions open.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        shapes = input_shapes or [(1, *tuple(i.shape[1:])) for i in model.inputs]
        if any(d is None for s in shapes for d in s):
            raise FrontendError(f"model inputs have open dimensions {shapes}; pass input_shapes=[...]")
        specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
        fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False), input_signature=specs)
        # Variables are frozen first: from_concrete_functions would keep them as resource variables.
        frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        data = converter.convert()
    except FrontendError:
        raise
    except Exception as e:  # TF raises many types; the user needs to know it was the float conversion
        raise FrontendError(f"TFLiteConverter could not convert the Keras model to float: {e}") from e
    return load(data, name=name or getattr(model, "name", "keras_model"))


def from_saved_model(path: str | os.PathLike, name: str | None = None) -> FloatModel:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(path))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        data = converter.convert()
    except Exception as e:
        raise FrontendError(f"{path}: TFLiteConverter could not convert the SavedModel to float: {e}") from e
    return load(data, name=name or os.path.basename(os.fspath(path).rstrip("/")))
