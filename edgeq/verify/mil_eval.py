"""Host evaluator of the ML program (MIL) stored in a saved Core ML package.

Core ML cannot predict on Linux, so edgeq proves on the host what its .mlpackage files compute: this
module reads a package back from disk (the protobuf model and the weight blob) and evaluates `main`
op by op in numpy. It is a reference, independent of edgeq's writer: op semantics come from the MIL
op definitions (see mil_ops.py), the file format from the Core ML protobuf and MILBlob specs.

    prog = MILProgram.load("model.mlpackage")
    out = prog.run({"image": arr}, precision="fp32")

precision="fp32" is the exact math of the program: values of MIL type fp16 are held as float32 and
never rounded to fp16 (fp16 constants are widened exactly; cast to fp16 does not round), so a float
model should agree within float32 rounding. precision="fp16" is device-like: every op computes from
its inputs in float64 and every output of MIL type fp16 is rounded to float16 (held as float32).
Integer values are always exact; an integer result outside its type is an error, not a wrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgeq.errors import CoreMLError, InputDataError
from edgeq.verify.mil_blob import BYTE_ALIGNED, SUB_BYTE_BITS, BlobFile, decode, packed_size
from edgeq.verify.mil_ops import FLOATS, INT_RANGES, OPS, OpContext, Val

MODEL_DIR = PurePosixPath("Data/com.apple.CoreML")
EDGEQ_VERSION_KEY = "com.github.edgeq.version"

# Core ML protobuf DataType names -> MIL dtype names; other DataTypes (fp64, bf16, fp8) are rejected.
_DTYPES = {
    "BOOL": "bool", "STRING": "string", "FLOAT16": "fp16", "FLOAT32": "fp32", "INT8": "int8", "UINT8": "uint8",
    "INT16": "int16", "UINT16": "uint16", "INT32": "int32", "UINT32": "uint32", "INT64": "int64",
    "INT4": "int4", "UINT4": "uint4", "UINT1": "uint1", "UINT2": "uint2", "UINT3": "uint3", "UINT6": "uint6",
}
# numpy dtype each MIL dtype is held in (sub-byte integers unpacked to one byte each).
_HELD: dict[str, Any] = {
    "bool": np.bool_, "fp16": np.float32, "fp32": np.float32, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
    "int4": np.int8, **{t: np.uint8 for t in SUB_BYTE_BITS if t != "int4"},
}
# Model specificationVersion -> the iOS opset generation whose op definitions apply.
_IOS = {6: 15, 7: 16, 8: 17, 9: 18}


@dataclass
class _Type:
    """A declared type: MIL dtype (or 'dict' / 'list') and shape, None for an unknown dim."""

    dtype: str
    shape: tuple[int | None, ...] | None


@dataclass
class _Op:
    type: str
    name: str  # the op's `name` attribute (its first output's name when absent)
    outputs: list[tuple[str, _Type]]
    inputs: dict[str, list[str | Val]]  # each binding: the name of an earlier value, or an immediate value
    const: Val | None = None


class _Reader:
    """Decodes protobuf Values (immediate or in a weight blob) into held arrays, checking sizes."""

    def __init__(self, dtype_name: Callable[[int], str], weights_dir: Path | None) -> None:
        self.dtype_name = dtype_name  # MIL_pb2.DataType.Name
        self.weights_dir = weights_dir
        self.blobs: dict[Path, BlobFile] = {}

    def type(self, vt: Any, where: str) -> _Type:
        kind = vt.WhichOneof("type")
        if kind == "dictionaryType":
            return _Type("dict", None)
        if kind == "listType":
            return _Type("list", None)
        if kind != "tensorType":
            raise CoreMLError(f"{where}: values of type {kind} are not supported by the host evaluator")
        tt = vt.tensorType
        try:
            name = self.dtype_name(tt.dataType)
        except ValueError:
            name = f"code {tt.dataType}"
        if name not in _DTYPES:
            raise CoreMLError(f"{where}: dtype {name} is not supported by the host evaluator")
        if tt.rank < 0 or any(d.WhichOneof("dimension") == "unknown" and d.unknown.variadic for d in tt.dimensions):
            return _Type(_DTYPES[name], None)
        if tt.rank != len(tt.dimensions):
            raise CoreMLError(f"{where}: rank {tt.rank} with {len(tt.dimensions)} dimensions")
        dims = tuple(d.constant.size if d.WhichOneof("dimension") == "constant" else None for d in tt.dimensions)
        return _Type(_DTYPES[name], dims)

    def value(self, v: Any, where: str) -> Val:
        t = self.type(v.type, where)
        if t.dtype == "list":
            items = [self.value(item, where).data for item in v.immediateValue.list.values]
            return Val([i.item() if isinstance(i, np.ndarray) else i for i in items], "list")
        if t.shape is None or None in t.shape:
            raise CoreMLError(f"{where}: a constant of unknown shape")
        count = math.prod(t.shape)
        source = v.WhichOneof("value")
        if source == "blobFileValue":
            data = self._blob(v.blobFileValue, t.dtype, count, where)
        elif source == "immediateValue" and v.immediateValue.WhichOneof("value") == "tensor":
            data = _immediate(v.immediateValue.tensor, t.dtype, count, where)
        else:
            raise CoreMLError(f"{where}: constant has no tensor value ({source})")
        if t.dtype == "string":
            return Val(data[0] if t.shape == () else np.array(data, dtype=object).reshape(t.shape), "string")
        if t.dtype not in FLOATS and t.dtype != "bool":
            low, high = INT_RANGES[t.dtype]
            if data.size and (data.min() < low or data.max() > high):
                raise CoreMLError(f"{where}: constant value out of {t.dtype} range")
        return Val(np.asarray(data).astype(_HELD[t.dtype]).reshape(t.shape), t.dtype)

    def _blob(self, bfv: Any, dtype: str, count: int, where: str) -> np.ndarray:
        name = PurePosixPath(bfv.fileName)
        if name.parts[:1] != ("@model_path",) or ".." in name.parts or len(name.parts) < 2:
            raise CoreMLError(f"{where}: weight file '{bfv.fileName}' is not under @model_path")
        if self.weights_dir is None:
            raise CoreMLError(f"{where}: needs '{bfv.fileName}' but no package directory was given")
        path = self.weights_dir.joinpath(*name.parts[1:])
        if dtype not in BYTE_ALIGNED and dtype not in SUB_BYTE_BITS:
            raise CoreMLError(f"{where}: blob constant of dtype {dtype}")
        try:
            if path not in self.blobs:
                self.blobs[path] = BlobFile(path)
            return self.blobs[path].read(bfv.offset, dtype, count)
        except CoreMLError as e:
            raise CoreMLError(f"{where}: {e}") from e


def _immediate(tv: Any, dtype: str, count: int, where: str) -> Any:
    """An immediate TensorValue as a flat array (a list of str for strings), checking its length."""
    field = tv.WhichOneof("value")
    if field == "bytes" and (dtype in BYTE_ALIGNED or dtype in SUB_BYTE_BITS):
        raw = tv.bytes.values
        if len(raw) != packed_size(dtype, count):
            raise CoreMLError(f"{where}: {len(raw)} bytes for {count} x {dtype}")
        return decode(raw, dtype, count)
    kinds = {
        "floats": ("fp32",), "bools": ("bool",), "strings": ("string",),
        "ints": ("int8", "uint8", "int16", "uint16", "int32", "uint32"), "longInts": ("int64", "int32", "uint32"),
    }
    if field is None and count == 0:
        return np.zeros(0)
    if dtype not in kinds.get(field, ()):
        raise CoreMLError(f"{where}: a {dtype} constant stored in field '{field}'")
    values = list(getattr(tv, field).values)
    if len(values) != count:
        raise CoreMLError(f"{where}: {len(values)} values for {count} elements")
    return values if field == "strings" else np.array(values)


class MILProgram:
    """The `main` function of an ML program, ready to evaluate on the host."""

    def __init__(self, spec: Any, weights_dir: Path | None) -> None:
        from coremltools.proto import MIL_pb2

        if spec.WhichOneof("Type") != "mlProgram":
            raise CoreMLError(f"model is a {spec.WhichOneof('Type')}, not an ML program (mlProgram)")
        # A newer specification is read with the newest definitions known here (iOS18); a parameter
        # added since then is still caught, as an input no implementation reads.
        self.ios = _IOS.get(spec.specificationVersion, 18 if spec.specificationVersion > 9 else 0)
        if not self.ios:
            raise CoreMLError(f"specificationVersion {spec.specificationVersion} predates ML programs")
        functions = spec.mlProgram.functions
        if "main" not in functions:
            raise CoreMLError(f"ML program has no function 'main' (has {sorted(functions)})")
        main = functions["main"]
        if main.opset not in main.block_specializations:
            raise CoreMLError(f"function main has no block for its opset '{main.opset}'")
        block = main.block_specializations[main.opset]
        reader = _Reader(MIL_pb2.DataType.Name, weights_dir)
        self.metadata = dict(spec.description.metadata.userDefined)
        self.written_by_edgeq = EDGEQ_VERSION_KEY in self.metadata
        self._image_inputs = {f.name for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"}
        self._input_types: dict[str, _Type] = {}
        for nv in main.inputs:
            t = reader.type(nv.type, f"input '{nv.name}'")
            if t.dtype in ("dict", "list", "string") or t.shape is None:
                raise CoreMLError(f"input '{nv.name}': type {t.dtype} of unknown rank is not supported")
            self._input_types[nv.name] = t
        self.inputs = [(n, t.shape, t.dtype) for n, t in self._input_types.items()]
        known = set(self._input_types)
        self._ops = [self._parse(o, reader, known) for o in block.operations]
        self.ops = [o.type for o in self._ops]
        self.outputs = list(block.outputs)
        for name in self.outputs:
            if name not in known:
                raise CoreMLError(f"program output '{name}' is not produced by any op")
        self._constexpr_cache: dict[tuple[str, str], Val] = {}
        self._consts = {o.outputs[0][0]: o.const for o in self._ops if o.const is not None}
        self.constexpr_ops = {o.name for o in self._ops if o.type.startswith("constexpr_")}  # compressed weights

    def constexpr_params(self, op_name: str) -> dict[str, Any]:
        """The stored parameters of a constexpr op (by op or output name), as decoded from the file.

        For checking a compressed weight's integers and scales themselves, not only what they decode
        to: e.g. {"data": int8 array of int4 values, "scale": ..., "offset": ...}.
        """
        for o in self._ops:
            if o.type.startswith("constexpr_") and op_name in (o.name, o.outputs[0][0]):
                params = {}
                for key, bound in o.inputs.items():
                    v = bound[0]
                    if isinstance(v, str):
                        if v not in self._consts:
                            raise CoreMLError(f"{o.type} op '{o.name}': input '{key}' is computed, not stored")
                        v = self._consts[v]
                    params[key] = v.data
                return params
        raise CoreMLError(f"no constexpr op named '{op_name}'")

    @staticmethod
    def _parse(o: Any, reader: _Reader, known: set[str]) -> _Op:
        if not o.outputs:
            raise CoreMLError(f"{o.type} op without outputs")
        where = f"{o.type} op '{o.outputs[0].name}'"
        outputs = [(nv.name, reader.type(nv.type, where)) for nv in o.outputs]
        if o.type != "const" and o.type not in OPS:
            raise CoreMLError(f"{where}: op type '{o.type}' is not implemented by the host evaluator")
        if len(o.blocks):
            raise CoreMLError(f"{where}: nested blocks (control flow) are not supported")
        name_attr = reader.value(o.attributes["name"], where).data if "name" in o.attributes else outputs[0][0]
        op = _Op(o.type, str(name_attr), outputs, {})
        if o.type == "const":
            if "val" not in o.attributes or len(outputs) != 1:
                raise CoreMLError(f"{where}: const needs a 'val' attribute and one output")
            op.const = reader.value(o.attributes["val"], where)
            decl = outputs[0][1]
            shape = op.const.data.shape if isinstance(op.const.data, np.ndarray) else None
            if op.const.dtype != decl.dtype or (decl.shape is not None and shape not in (None, decl.shape)):
                raise CoreMLError(
                    f"{where}: value is {op.const.dtype} {shape}, output declared {decl.dtype} {decl.shape}"
                )
        for key, argument in o.inputs.items():
            bound: list[str | Val] = []
            for b in argument.arguments:
                if b.WhichOneof("binding") == "name":
                    if b.name not in known:
                        raise CoreMLError(f"{where}: input '{key}' names '{b.name}', which is not defined before it")
                    bound.append(b.name)
                else:
                    bound.append(reader.value(b.value, f"{where} input '{key}'"))
            op.inputs[key] = bound
        if o.type != "const":  # iOS16/17 constexpr ops carry their parameters as attributes
            for key, value in o.attributes.items():
                if key != "name":
                    if key in op.inputs:
                        raise CoreMLError(f"{where}: '{key}' is both an input and an attribute")
                    op.inputs[key] = [reader.value(value, f"{where} attribute '{key}'")]
        for name, _ in outputs:
            if name in known:
                raise CoreMLError(f"{where}: output '{name}' redefines a value (MIL is SSA)")
            known.add(name)
        return op

    @classmethod
    def load(cls, source: str | Path | Any, weights_dir: str | Path | None = None) -> MILProgram:
        """Read a saved .mlpackage directory, or take a Model protobuf (its blobs read from weights_dir)."""
        from coremltools.proto import Model_pb2

        if isinstance(source, Model_pb2.Model):
            return cls(source, None if weights_dir is None else Path(weights_dir))
        package = Path(source)
        model_path = package / MODEL_DIR / "model.mlmodel"
        try:
            raw = model_path.read_bytes()
        except OSError as e:
            raise CoreMLError(f"{package}: not a readable .mlpackage ({e})") from e
        spec = Model_pb2.Model()
        try:
            spec.ParseFromString(raw)
        except Exception as e:  # protobuf's DecodeError
            raise CoreMLError(f"{model_path}: not a Core ML model protobuf ({e})") from e
        return cls(spec, package / MODEL_DIR)

    def run(
        self,
        feeds: dict[str, Any],
        precision: str = "fp32",
        keep: bool = False,
        overrides: dict[str, np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """Evaluate main; returns output name -> value (every named value with keep=True).

        `overrides` replaces named op results by the given arrays (same shape, cast to the declared type) as
        they are produced, so each later op reads them: verification feeds every op another model's values
        to compare the ops one at a time.

        Tensors come back as numpy arrays (floats as float32). A classify op's label output is a str
        (or int) and its probabilities output a {label: float} dict; the raw probability vector is
        returned too, under the name of classify's `probabilities` input.
        """
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be 'fp32' or 'fp16', not {precision!r}")
        fp16 = precision == "fp16"
        env = self._feed(feeds, fp16)
        extra = []
        with np.errstate(all="ignore"):  # inf / nan are values of the program, not failures
            for o in self._ops:
                if o.const is not None:
                    env[o.outputs[0][0]] = o.const
                    continue
                key = (precision, o.outputs[0][0])
                if key in self._constexpr_cache:
                    env[o.outputs[0][0]] = self._constexpr_cache[key]
                    continue
                inputs = {k: [env[b] if isinstance(b, str) else b for b in bound] for k, bound in o.inputs.items()}
                ctx = OpContext(o.type, [(n, t.dtype) for n, t in o.outputs], inputs, self.ios)
                result = OPS[o.type](ctx)
                unread = sorted(set(o.inputs) - ctx.read)
                if unread:
                    ctx.fail(f"input(s) {unread} are not understood by the host evaluator")
                results = list(result) if len(o.outputs) > 1 else [result]
                if len(results) != len(o.outputs):
                    ctx.fail(f"computed {len(results)} outputs, {len(o.outputs)} declared")
                for (name, t), r in zip(o.outputs, results, strict=True):  # classify: a label and a dict
                    if overrides is not None and name in overrides:
                        r = np.asarray(overrides[name])
                        if t.shape is not None and r.shape != tuple(t.shape):
                            ctx.fail(f"override of '{name}' has shape {r.shape}, the program declares {t.shape}")
                    env[name] = Val(r, t.dtype) if o.type == "classify" else _held(ctx, r, t, fp16)
                if o.type.startswith("constexpr_"):
                    self._constexpr_cache[key] = env[o.outputs[0][0]]
                if o.type == "classify":
                    extra.append(o.inputs["probabilities"][0])
        names = list(env) if keep else self.outputs + [n for n in extra if isinstance(n, str)]
        return {n: env[n].data for n in names}

    def _feed(self, feeds: dict[str, Any], fp16: bool) -> dict[str, Val]:
        missing = [n for n in self._input_types if n not in feeds]
        unknown = [n for n in feeds if n not in self._input_types]
        if missing or unknown:
            raise InputDataError(
                f"inputs: missing {missing}, unexpected {unknown}; the program takes {list(self._input_types)}"
            )
        env = {}
        for name, t in self._input_types.items():
            arr = np.asarray(feeds[name])
            if arr.dtype.kind not in "biuf":
                raise InputDataError(f"input '{name}': dtype {arr.dtype} is not numeric")
            if not _fits(t.shape, arr.shape):
                raise InputDataError(f"input '{name}': shape {arr.shape}, the program takes {t.shape}")
            bad = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise InputDataError(f"input '{name}': {int(bad.sum())} non-finite values, the first at {first}")
            if name in self._image_inputs and arr.size and (arr.min() < 0 or arr.max() > 255):
                raise InputDataError(f"input '{name}' is an image: pixel values must lie in [0, 255]")
            if t.dtype in FLOATS:
                data = arr.astype(np.float32)
                if fp16 and t.dtype == "fp16":
                    data = data.astype(np.float16).astype(np.float32)
            else:
                low, high = (0, 1) if t.dtype == "bool" else INT_RANGES[t.dtype]
                if arr.size and (np.any(arr != np.round(arr)) or arr.min() < low or arr.max() > high):
                    raise InputDataError(f"input '{name}': values are not {t.dtype}")
                data = arr.astype(_HELD[t.dtype])
            env[name] = Val(data, t.dtype)
        return env


def _held(ctx: OpContext, result: Any, t: _Type, fp16: bool) -> Val:
    """An op's result as held for its declared output type; fp16 outputs rounded in fp16 mode."""
    if t.dtype in ("dict", "list", "string"):
        return Val(result, t.dtype)
    arr = np.asarray(result)
    if t.dtype in FLOATS:
        if arr.dtype.kind not in "fiu":
            ctx.fail(f"computed {arr.dtype} for a {t.dtype} output")
        arr = arr.astype(np.float16).astype(np.float32) if fp16 and t.dtype == "fp16" else arr.astype(np.float32)
    elif t.dtype == "bool":
        if arr.dtype != np.bool_:
            ctx.fail(f"computed {arr.dtype} for a bool output")
    else:
        if arr.dtype.kind not in "iu":
            ctx.fail(f"computed {arr.dtype} for a {t.dtype} output")
        low, high = INT_RANGES[t.dtype]
        if arr.size and (arr.min() < low or arr.max() > high):
            ctx.fail(f"result out of {t.dtype} range [{low}, {high}] (undefined in MIL)")
        arr = arr.astype(_HELD[t.dtype])
    if t.shape is not None and not _fits(t.shape, arr.shape):
        ctx.fail(f"computed shape {arr.shape}, the program declares {t.shape}")
    return Val(arr, t.dtype)


def _fits(declared: tuple[int | None, ...], shape: tuple[int, ...]) -> bool:
    """A shape matches a declared one: same rank, equal wherever the declared dim is known."""
    return len(declared) == len(shape) and all(d in (None, a) for d, a in zip(declared, shape, strict=True))
