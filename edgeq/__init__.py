"""edgeq: quantize a float model once; ship verified integer artifacts to every mobile accelerator."""

from __future__ import annotations

from edgeq import calibration, errors
from edgeq.algorithms.budget import Budget
from edgeq.api import QuantizedModel, compare, quantize
from edgeq.errors import EdgeqError
from edgeq.frontends.tflite import FloatModel, load
from edgeq.quant.plan import QuantPlan
from edgeq.verify.fidelity import FidelityReport

__version__ = "0.1.0"


def __getattr__(name: str):
    # Core ML pieces import coremltools, which takes a second: loaded on first use only.
    if name == "ImageInput":
        from edgeq.export.coreml_writer import ImageInput

        return ImageInput
    raise AttributeError(f"module 'edgeq' has no attribute {name!r}")


def from_keras(model, input_shapes=None, name=None) -> FloatModel:
    """A Keras model as a float graph (TFLiteConverter, float mode, static batch 1)."""
    from edgeq.frontends.keras import from_keras as _from_keras

    return _from_keras(model, input_shapes=input_shapes, name=name)


def from_saved_model(path, name=None) -> FloatModel:
    """A TensorFlow SavedModel directory as a float graph."""
    from edgeq.frontends.keras import from_saved_model as _from_saved_model

    return _from_saved_model(path, name=name)


def from_torch(module, sample_inputs, name=None) -> FloatModel:
    """A PyTorch module as a float graph (litert-torch export)."""
    from edgeq.frontends.torch import from_torch as _from_torch

    return _from_torch(module, sample_inputs, name=name)


def run(model, inputs):
    """Runs an integer .tflite (path or bytes) once in edgeq's C interpreter: outputs in model order."""
    from edgeq.verify.native import run as _run

    return _run(model, inputs)


def verify(model, inputs=None, samples: int = 16, seed: int = 0):
    """Proves an integer .tflite bit-exact against LiteRT BUILTIN_REF, every op's outputs compared; returns
    a VerifyResult (bit_exact, first_divergence, counts). `inputs`: a list of samples, each a list of
    arrays in model input order; default `samples` random full-range samples."""
    from edgeq.verify.bitexact import verify as _verify

    return _verify(model, inputs=inputs, samples=samples, seed=seed)


def sensitivity(model, calib, scheme: str = "int8", eval=None, metric: str = "sqnr", max_samples=None, progress=True):
    """Per quantizable layer, the model's output SQNR (and top-1 agreement for classifiers, given `eval` data)
    when only that layer is quantized; a SensitivityResult ranked most sensitive first (.table(), .to_dict())."""
    from edgeq.algorithms.sensitivity import sensitivity as _sensitivity

    return _sensitivity(model, calib, scheme, eval=eval, metric=metric, max_samples=max_samples, progress=progress)


def verify_coreml(package, qm, data=None, samples: int = 64, precision: str = "fp32", seed: int = 0):
    """Checks an .mlpackage edgeq wrote against the QuantizedModel it renders: every weight decodes to the
    .tflite's integers and scales, and the MIL program evaluated on the host matches the float model (and the
    integer model under w8a8). Returns a CoreMLVerifyResult (weights_exact, per-output SQNR, top-1)."""
    from edgeq.verify.coreml import verify_coreml as _verify_coreml

    return _verify_coreml(package, qm, data=data, samples=samples, precision=precision, seed=seed)


__all__ = [
    "Budget",
    "EdgeqError",
    "FidelityReport",
    "FloatModel",
    "ImageInput",
    "QuantPlan",
    "QuantizedModel",
    "calibration",
    "compare",
    "errors",
    "from_keras",
    "from_saved_model",
    "from_torch",
    "load",
    "quantize",
    "run",
    "sensitivity",
    "verify",
    "verify_coreml",
]
