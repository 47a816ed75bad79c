"""ctypes binding to edgeq's C reference interpreter (native/, built into edgeq/_native at install)."""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError, InputDataError, ModelFormatError, UnsupportedOpError

MAX_DIMS = 8
_STATUS = {0: "OK", 1: "ERROR_ARGUMENT", 2: "ERROR_MALFORMED", 3: "ERROR_UNSUPPORTED", 4: "ERROR_MEMORY",
           5: "ERROR_RUNTIME"}
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
           9: np.int8, 17: np.int8}
_TYPE_NAMES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 6: "BOOL", 7: "INT16", 9: "INT8",
               17: "INT4"}


class NativeError(EdgeqError):
    """The C interpreter refused a call; `status` is its edgeq_status name."""

    def __init__(self, status: str, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


class _TensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("type", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("dims", ctypes.c_int32 * MAX_DIMS),
        ("bytes", ctypes.c_size_t),
        ("num_scales", ctypes.c_int32),
        ("scales", ctypes.POINTER(ctypes.c_float)),
        ("zero_points", ctypes.POINTER(ctypes.c_int64)),
        ("quantized_dimension", ctypes.c_int32),
        ("is_constant", ctypes.c_int32),
    ]


class _OpInfo(ctypes.Structure):
    _fields_ = [
        ("builtin_code", ctypes.c_int32),
        ("name", ctypes.c_char_p),
        ("num_inputs", ctypes.c_int32),
        ("inputs", ctypes.POINTER(ctypes.c_int32)),
        ("num_outputs", ctypes.c_int32),
        ("outputs", ctypes.POINTER(ctypes.c_int32)),
    ]


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    type: str  # TFLite type name: INT8, INT16, FLOAT32, ...
    dtype: np.dtype
    shape: tuple[int, ...]
    nbytes: int
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    is_constant: bool


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str  # builtin name, e.g. CONV_2D
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def library_path() -> Path:
    """The built interpreter: $EDGEQ_NATIVE_LIB if set (a build of native/ elsewhere), else edgeq/_native."""
    if os.environ.get("EDGEQ_NATIVE_LIB"):
        return Path(os.environ["EDGEQ_NATIVE_LIB"])
    here = Path(__file__).resolve().parents[1]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_native{suffix}"
        if candidate.exists():
            return candidate
    raise EdgeqError(f"edgeq's native interpreter is not built (no _native*.so in {here}); reinstall edgeq "
                     "(`pip install .`) or run `python setup.py build_ext --inplace`")


_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(library_path()))
        p, i32, sz = ctypes.c_void_p, ctypes.c_int32, ctypes.c_size_t
        signatures = {
            "edgeq_model_load": (i32, [p, sz, ctypes.POINTER(p), ctypes.c_char_p, sz]),
            "edgeq_model_free": (None, [p]),
            "edgeq_num_inputs": (i32, [p]),
            "edgeq_num_outputs": (i32, [p]),
            "edgeq_input_tensor": (i32, [p, i32]),
            "edgeq_output_tensor": (i32, [p, i32]),
            "edgeq_num_tensors": (i32, [p]),
            "edgeq_num_ops": (i32, [p]),
            "edgeq_tensor_info_get": (i32, [p, i32, ctypes.POINTER(_TensorInfo)]),
            "edgeq_op_info_get": (i32, [p, i32, ctypes.POINTER(_OpInfo)]),
            "edgeq_tensor_data": (p, [p, i32]),
            "edgeq_invoke": (i32, [p]),
            "edgeq_invoke_ops": (i32, [p, i32, i32]),
            "edgeq_arena_bytes": (sz, [p]),
            "edgeq_persistent_bytes": (sz, [p]),
            "edgeq_last_error": (ctypes.c_char_p, [p]),
        }
        for name, (restype, argtypes) in signatures.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _lib = lib
    return _lib


class NativeModel:
    """A model loaded into the C interpreter. The model bytes are copied into an aligned buffer that
    lives as long as this object (the interpreter reads weights in place)."""

    def __init__(self, model: bytes | str | Path):
        data = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
        self._lib = _library()
        self._buffer = np.zeros(len(data) + 64, dtype=np.uint8)
        start = (-self._buffer.ctypes.data) % 64
        self._data = self._buffer[start : start + len(data)]
        self._data[:] = np.frombuffer(data, dtype=np.uint8)
        handle = ctypes.c_void_p()
        error = ctypes.create_string_buffer(512)
        status = self._lib.edgeq_model_load(self._data.ctypes.data, len(data), ctypes.byref(handle), error, 512)
        if status != 0:
            message = error.value.decode(errors="replace")
            if _STATUS.get(status) == "ERROR_UNSUPPORTED":
                raise UnsupportedOpError(f"edgeq's interpreter cannot run this model: {message}")
            if _STATUS.get(status) == "ERROR_MALFORMED":
                raise ModelFormatError(f"edgeq's interpreter rejected the model: {message}")
            raise NativeError(_STATUS.get(status, str(status)), message)
        self._handle = handle
        n = self._lib.edgeq_num_tensors(handle)
        self.tensors = [self._tensor_info(i) for i in range(n)]
        self.ops = [self._op_info(i) for i in range(self._lib.edgeq_num_ops(handle))]
        self.inputs = [self.tensors[self._lib.edgeq_input_tensor(handle, i)]
                       for i in range(self._lib.edgeq_num_inputs(handle))]
        self.outputs = [self.tensors[self._lib.edgeq_output_tensor(handle, i)]
                        for i in range(self._lib.edgeq_num_outputs(handle))]
        self.arena_bytes = int(self._lib.edgeq_arena_bytes(handle))
        self.persistent_bytes = int(self._lib.edgeq_persistent_bytes(handle))

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            self._lib.edgeq_model_free(handle)
            self._handle = None

    def _tensor_info(self, index: int) -> TensorInfo:
        info = _TensorInfo()
        self._lib.edgeq_tensor_info_get(self._handle, index, ctypes.byref(info))
        n = info.num_scales
        return TensorInfo(
            index=index,
            name=(info.name or b"").decode(errors="replace"),
            type=_TYPE_NAMES.get(info.type, str(info.type)),
            dtype=np.dtype(_DTYPES.get(info.type, np.uint8)),
            shape=tuple(info.dims[: info.ndim]),
            nbytes=int(info.bytes),
            scales=tuple(float(info.scales[k]) for k in range(n)),
            zero_points=tuple(int(info.zero_points[k]) for k in range(n)),
            is_constant=bool(info.is_constant),
        )

    def _op_info(self, index: int) -> OpInfo:
        info = _OpInfo()
        self._lib.edgeq_op_info_get(self._handle, index, ctypes.byref(info))
        return OpInfo(index, info.name.decode(), tuple(info.inputs[k] for k in range(info.num_inputs)),
                      tuple(info.outputs[k] for k in range(info.num_outputs)))

    def _view(self, t: TensorInfo) -> np.ndarray:
        address = self._lib.edgeq_tensor_data(self._handle, t.index)
        if not address or t.type == "INT4":
            raw = (ctypes.c_uint8 * t.nbytes).from_address(address) if address else b""
            return np.frombuffer(bytes(raw), dtype=np.uint8)
        count = t.nbytes // t.dtype.itemsize
        array = np.ctypeslib.as_array((ctypes.c_uint8 * t.nbytes).from_address(address)).view(t.dtype)
        return array[:count].reshape(t.shape)

    def set_inputs(self, inputs: list[np.ndarray]) -> None:
        if len(inputs) != len(self.inputs):
            raise InputDataError(f"the model has {len(self.inputs)} inputs, {len(inputs)} given")
        for t, x in zip(self.inputs, inputs, strict=True):
            x = np.asarray(x)
            if x.dtype != t.dtype or x.size != int(np.prod(t.shape, dtype=np.int64)):
                raise InputDataError(f"input '{t.name}' needs {t.dtype} of shape {t.shape}, got {x.dtype} {x.shape}")
            self._view(t)[...] = x.reshape(t.shape)

    def invoke(self, first: int = 0, last: int | None = None) -> None:
        last = len(self.ops) if last is None else last
        status = self._lib.edgeq_invoke_ops(self._handle, first, last)
        if status != 0:
            raise NativeError(_STATUS.get(status, str(status)), self._lib.edgeq_last_error(self._handle).decode())

    def tensor(self, index: int) -> np.ndarray:
        """A copy of a tensor's current contents (activations: valid right after the op that writes them)."""
        return self._view(self.tensors[index]).copy()

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.set_inputs(inputs)
        self.invoke()
        return [self.tensor(t.index) for t in self.outputs]


def coerce_input(x: np.ndarray, t: TensorInfo, where: str) -> np.ndarray:
    """An input in its stored dtype: integers pass as they are; floats given for an integer input are
    quantized with the input's scale and zero point."""
    x = np.asarray(x)
    if x.size != int(np.prod(t.shape, dtype=np.int64)):
        raise InputDataError(f"{where}: input '{t.name}' needs shape {t.shape}, got {x.shape}")
    if np.issubdtype(t.dtype, np.integer) and np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise InputDataError(f"{where}: input '{t.name}' holds NaN or Inf")
        if not t.scales:
            raise InputDataError(f"{where}: input '{t.name}' is {t.type} without a scale; give integers")
        info = np.iinfo(t.dtype)
        x = np.clip(np.round(x / t.scales[0]) + t.zero_points[0], info.min, info.max)
    return x.astype(t.dtype).reshape(t.shape)


def run(model: bytes | str | Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Runs `model` once in edgeq's C interpreter; outputs come back in their stored dtypes. Inputs are in
    model input order, in the stored dtype (float arrays for an integer input are quantized first)."""
    native = NativeModel(model)
    if len(inputs) != len(native.inputs):
        raise InputDataError(f"the model has {len(native.inputs)} inputs, {len(inputs)} given")
    pairs = enumerate(zip(inputs, native.inputs, strict=True))
    return native.run([coerce_input(x, t, f"input {i}") for i, (x, t) in pairs])
