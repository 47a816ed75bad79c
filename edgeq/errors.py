"""One exception family: every failure says what went wrong and where."""

from __future__ import annotations


class EdgeqError(Exception):
    """Base of every error edgeq raises on purpose."""


class ModelFormatError(EdgeqError):
    """The file is not a readable TFLite flatbuffer (wrong identifier, truncated, bad offsets)."""


class AlreadyQuantizedError(EdgeqError):
    """The input model already carries integer activations or weights; edgeq wants the float model."""


class UnsupportedOpError(EdgeqError):
    """An operator edgeq cannot quantize (and the user did not allow it to stay float)."""


class CalibrationDataError(EdgeqError):
    """Calibration data is empty, non-finite, or does not match the model's inputs."""


class PlanError(EdgeqError):
    """A QuantPlan is inconsistent with its graph or with the TFLite quantization spec."""


class FrontendError(EdgeqError):
    """A Keras / SavedModel / PyTorch model could not be converted to a float graph."""


class InputDataError(EdgeqError):
    """Inputs given to run or verify do not match the model (count, shape, dtype, NaN, unreadable file)."""


class CoreMLError(EdgeqError):
    """A Core ML package is malformed, not edgeq's, or uses an op the host evaluator lacks."""
