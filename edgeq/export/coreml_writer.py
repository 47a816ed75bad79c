"""Render a QuantPlan as a Core ML ML program (.mlpackage) with coremltools' MIL builder.

The program is built in its final form (fp16 compute, constexpr weights, quantize/dequantize with the plan's
encodings) and converted with an empty pass pipeline: coremltools' default passes would rewrite it (e.g.
`nullify_redundant_quantization_zero_point` turns int8 zero point -128 into uint8), and the exporter's promise
is that the package carries the plan's integers and scales exactly. Only coremltools' backend passes run
(image preprocessing, constant dedup, name sanitizing), which do not touch encodings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeq.errors import PlanError
from edgeq.export.coreml_env import Function, Program, ct, mb, no_pass_progress, types
from edgeq.export.coreml_ops import lower_op
from edgeq.export.coreml_program import MODES, NCHW, Lowering, Value, identity, mil_name
from edgeq.frontends.host_ops import host_graph
from edgeq.quant.schemes import get_scheme

if TYPE_CHECKING:
    from edgeq.api import QuantizedModel

# The oldest OS whose Core ML runs each mode's ops: ML programs (iOS15), constexpr weights (iOS16),
# quantize/dequantize (iOS17), constexpr_blockwise_shift_scale with int4 (iOS18).
MODE_MIN_OS = {"fp16": "iOS15", "w8": "iOS16", "w8a8": "iOS17", "w4": "iOS18"}
EDGEQ_METADATA_PREFIX = "com.github.edgeq."
WEIGHT_THRESHOLD = 2048  # export_coreml's default, coremltools' too: not written to the metadata


@dataclass(frozen=True)
class ImageInput:
    """The model's image input as Xcode and Vision present it: the program receives pixels (0..255) and
    computes x = pixel * scale + bias, the normalization the .tflite expects already applied."""

    scale: float = 1.0
    bias: float | Sequence[float] = 0.0
    color_layout: str = "RGB"  # RGB, BGR or GRAYSCALE
    name: str | None = None  # which model input (default: the only rank-4 input)


def parse_minimum_os(value: str | None, mode: str):
    """A coremltools target from "iOS17" / "macOS14" style names; too old for the mode is an error, never a
    silent downgrade of the quantization."""
    need = getattr(ct.target, MODE_MIN_OS[mode])
    if value is None:
        return need
    target = getattr(ct.target, str(value), None)
    if target is None:
        known = ", ".join(t.name for t in ct.target if t.name.startswith(("iOS", "macOS")))
        raise PlanError(f"minimum_os={value!r} is not a Core ML deployment target; known: {known}")
    if target < need:
        raise PlanError(
            f"mode {mode!r} needs {MODE_MIN_OS[mode]} or later (its ops do not exist before), but minimum_os="
            f"{value!r}; raise minimum_os or choose a mode that OS runs (iOS15: fp16, iOS16: w8, iOS17: w8a8)"
        )
    return target


def _check_plan(qm: QuantizedModel, mode: str) -> None:
    plan = qm.plan
    weight_types = {enc.dtype for enc in plan.tensors.values() if enc.narrow_range or enc.dtype == "int4"}
    # An INT4 scheme whose coverage options (weight_threshold, block_fallback) left every weight float is still
    # a w4 plan: its package is the float program, as coremltools' would be.
    if mode == "w4" and "int4" not in weight_types and get_scheme(plan.scheme).weight_dtype != "int4":
        raise PlanError(
            f"mode 'w4' needs a plan with INT4 weights (scheme int4-block32, int4-channel, ...); this plan is "
            f"{plan.scheme!r}: quantize with an int4 scheme, or export mode 'w8'"
        )
    if mode in ("w8", "w8a8") and "int4" in weight_types:
        raise PlanError(f"mode {mode!r} writes int8 weights, but plan {plan.scheme!r} has INT4 weights: use mode 'w4'")
    if mode == "w8a8" and not plan.scheme.startswith("int8"):
        raise PlanError(
            f"mode 'w8a8' renders the plan's int8 activation encodings; plan {plan.scheme!r} has none (Core ML "
            f"quantize takes int8/uint8 only): quantize with scheme 'int8', or export mode 'w8'"
        )
    promoted = sorted({n for n, e in plan.tensors.items() if e.dtype == "int16"})
    promoted += [f"op {r.op} input {r.input}" for r in plan.requantize if r.encoding and r.encoding.dtype == "int16"]
    if mode == "w8a8" and promoted:
        raise PlanError(
            f"mode 'w8a8' renders int8 activations, but the plan promotes {len(promoted)} tensor(s) to int16 "
            f"({', '.join(promoted[:3])}{', ...' if len(promoted) > 3 else ''}; Core ML quantize takes int8/uint8 "
            f"only): export mode 'w8', or quantize without int16x8 promotions"
        )


_INTEGER_TYPES = ("int8", "uint8", "int16", "int32", "int64", "int4")


def _integers(qm: QuantizedModel) -> dict[str, np.ndarray]:
    """The rendered .tflite graph's integer constants by tensor name: what the Android artifact holds."""
    return {
        t.name: np.asarray(t.data)
        for t in qm.graph.tensors
        if t.data is not None and t.quant is not None and t.dtype in _INTEGER_TYPES
    }


def _io_name(graph, t: int, signature: dict[str, int]) -> str:
    by_tensor = {v: k for k, v in signature.items()}
    return mil_name(by_tensor.get(t, graph.tensors[t].name))


def _image_layout(shape: tuple[int, ...], where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(MIL NCHW shape, perm) of an image input given as NHWC or NCHW in the .tflite."""
    if len(shape) == 4 and shape[0] == 1 and shape[3] in (1, 3):
        return (1, shape[3], shape[1], shape[2]), NCHW
    if len(shape) == 4 and shape[0] == 1 and shape[1] in (1, 3):
        return tuple(shape), identity(4)
    raise PlanError(f"{where}: an image input must be [1, H, W, C] or [1, C, H, W] with C = 1 or 3, not {list(shape)}")


def build_program(
    qm: QuantizedModel, mode: str, target, image: ImageInput | None, weight_threshold: int = 0
) -> tuple[Program, dict, list]:
    """The MIL program of the plan in `mode`, the tensor map that verification rebuilds (tensor index in the
    float graph -> [MIL name, perm] for activations and weights), and coremltools input types."""
    mb.name_count.clear()  # the builder numbers implicit constants process-wide: every build starts from zero
    graph = host_graph(qm.float_model.graph) or qm.float_model.graph
    L = Lowering(
        graph, qm.plan, mode, _integers(qm), target, float_ops={f.index for f in qm.plan.float_ops},
        weight_threshold=weight_threshold,
    )  # fmt: skip
    in_names = [_io_name(graph, t, graph.signature_inputs) for t in graph.inputs]
    out_names = [_io_name(graph, t, graph.signature_outputs) for t in graph.outputs]
    if len(set(in_names + out_names)) != len(in_names) + len(out_names):
        raise PlanError(f"model inputs/outputs {in_names + out_names} are not distinct as Core ML names")
    L.used_names.update(in_names + out_names)
    image_index = None
    if image is not None:
        candidates = [k for k, t in enumerate(graph.inputs) if len(graph.tensors[t].shape) == 4]
        if image.name is not None:
            candidates = [k for k in candidates if in_names[k] == mil_name(image.name)]
        if len(candidates) != 1:
            raise PlanError(f"image_input: expected one rank-4 input{f' named {image.name!r}' if image.name else ''}, "
                            f"the model has inputs {in_names}")  # fmt: skip
        image_index = candidates[0]
    placeholders, perms, input_types = {}, {}, []
    for k, t in enumerate(graph.inputs):
        tensor = graph.tensors[t]
        dtype = types.fp32 if tensor.dtype.startswith("float") else types.int32
        shape, perm = tuple(tensor.shape), identity(len(tensor.shape))
        if k == image_index:
            shape, perm = _image_layout(tensor.shape, f'input "{in_names[k]}"')
            input_types.append(_image_type(in_names[k], shape, image))
        else:
            input_types.append(ct.TensorType(name=in_names[k], shape=shape, dtype=np.float32 if dtype == types.fp32
                                             else np.int32))  # fmt: skip
        placeholders[in_names[k]] = mb.placeholder(shape=shape, dtype=dtype)
        perms[t] = perm
    prog = Program()
    with Function(placeholders, opset_version=target) as func:
        for k, t in enumerate(graph.inputs):
            var = func.inputs[in_names[k]]
            if graph.tensors[t].dtype.startswith("float"):
                L.fp32_inputs[t] = var
                var = mb.cast(x=var, dtype="fp16", name=L.out_name(t))
            L.emit(t, var, perms[t])
        requant = {}
        for r in qm.plan.requantize:
            requant.setdefault(r.op, []).append(r)
        L.plan_deferrals(requant)
        for i, op in enumerate(graph.ops):
            saved = {}
            for r in requant.get(i, []) if L.activations_quantized() else []:
                if (i, r.input) in L.deferred_requantize:  # the pair after op i requantizes this input
                    continue
                t = op.inputs[r.input]
                saved[t] = L.values[t]
                enc = r.target(qm.plan)
                L.values[t] = Value(L.fake_quant(L.values[t].var, enc, f"{L.tname(t)}__as_{r.like}"), L.values[t].perm)
            if i not in L.float_ops:  # an integer op reads float-sourced inputs through their encoding
                for t in op.inputs:
                    if t in L.float_sourced and t not in saved:
                        saved[t] = L.values[t]
                        L.values[t] = L.quantized_view(t)
            lower_op(L, i, op)
            L.values.update(saved)
        outs = []
        for t, name in zip(graph.outputs, out_names, strict=True):
            outs.append(L.output(L.value(t, identity(len(graph.tensors[t].shape))), name))
        func.set_outputs(outs)
        L.prune(func)
        L.share_constants(func)
        prog.add_function("main", func)
    tensor_map = {
        # Activations are compared op by op only under w8a8; other modes carry no activation map.
        "values": {str(t): [v.var.name, list(v.perm)] for t, v in {**L.values, **L.quantized_views}.items()}
        if mode == "w8a8"
        else {},
        "weights": {str(t): v for t, v in L.weights.items()},
        "quantize": L.quantize_ops,
        "float_weights": [str(t) for t in L.float_weights],
        "outputs": out_names,
        "images": {},
    }
    if image is not None:
        channels = input_types[image_index].shape.shape[1]
        tensor_map["images"][in_names[image_index]] = [float(image.scale), _image_bias(image, channels)]
    return prog, tensor_map, input_types


def _export_metadata(mode: str, target, image: ImageInput | None, weight_threshold: int) -> dict[str, str]:
    """The export arguments that shape the program, as package metadata: with the plan they rebuild it."""
    meta = {"mode": mode, "minimum_os": target.name}
    if mode in ("w8", "w4") and weight_threshold != WEIGHT_THRESHOLD:  # only they keep small weights fp16
        meta["weight_threshold"] = str(weight_threshold)
    if image is not None:
        bias = list(image.bias) if isinstance(image.bias, Sequence) else image.bias
        meta["image_input"] = json.dumps([image.name, image.scale, bias, image.color_layout], separators=(",", ":"))
    return {EDGEQ_METADATA_PREFIX + k: v for k, v in meta.items()}


def rebuild_tensor_map(qm: QuantizedModel, metadata: dict[str, str]) -> dict:
    """The tensor map of a package edgeq wrote from `qm`'s plan (tensor index -> MIL names, see build_program).

    The build is deterministic, so the plan and the export arguments kept in the package's metadata give the
    same program and names again: the map stays out of the package (it was 0.1-0.2% of a w8 package's bytes)."""
    mode = metadata[EDGEQ_METADATA_PREFIX + "mode"]
    target = getattr(ct.target, metadata.get(EDGEQ_METADATA_PREFIX + "minimum_os", MODE_MIN_OS[mode]))
    threshold = int(metadata.get(EDGEQ_METADATA_PREFIX + "weight_threshold", WEIGHT_THRESHOLD))
    image = None
    if EDGEQ_METADATA_PREFIX + "image_input" in metadata:
        name, scale, bias, layout = json.loads(metadata[EDGEQ_METADATA_PREFIX + "image_input"])
        image = ImageInput(scale=scale, bias=bias, color_layout=layout, name=name)
    return build_program(qm, mode, target, image, threshold)[1]


def _image_bias(image: ImageInput, channels: int) -> list[float]:
    bias = image.bias if isinstance(image.bias, Sequence) else [image.bias] * channels
    if len(bias) != channels:
        raise PlanError(f"image_input bias has {len(bias)} values for {channels} channels")
    return [float(b) for b in bias]


def _image_type(name: str, shape: tuple[int, ...], image: ImageInput):
    channels = shape[1]
    layout = image.color_layout.upper()
    if (channels == 1) != (layout == "GRAYSCALE"):
        raise PlanError(f'input "{name}" has {channels} channels, color_layout {image.color_layout!r} does not fit')
    bias = _image_bias(image, channels)
    return ct.ImageType(
        name=name, shape=shape, scale=float(image.scale), bias=bias if channels == 3 else bias[0],
        color_layout=getattr(ct.colorlayout, layout), channel_first=True,
    )  # fmt: skip


def _labels(class_labels, n_out: tuple[int, ...]) -> list[str]:
    if isinstance(class_labels, str | os.PathLike):
        labels = [line.strip() for line in Path(class_labels).read_text().splitlines() if line.strip()]
    else:
        labels = [str(x) for x in class_labels]
    if len(n_out) not in (1, 2) or n_out[-1] != len(labels):
        raise PlanError(f"{len(labels)} class labels for an output of shape {list(n_out)}: they must match")
    return labels


def export_coreml(
    qm: QuantizedModel,
    path: str | os.PathLike,
    mode: str = "w8a8",
    image_input: ImageInput | None = None,
    class_labels: str | os.PathLike | Sequence[str] | None = None,
    minimum_os: str | None = None,
    weight_threshold: int = WEIGHT_THRESHOLD,
    author: str = "edgeq",
    version: str = "",
    description: str = "",
) -> Path:
    """Write the plan as an .mlpackage, atomically and byte-identically for the same inputs.

    `weight_threshold`: in the weight-only modes (w8, w4), weights of at most this many values stay fp16, as
    in coremltools' own weight quantization (same name, same default, 2048): they cost almost nothing in size
    and are often the most sensitive (first convolutions, depthwise filters). 0 quantizes every planned
    weight; w8a8 always quantizes every weight."""
    from edgeq import __version__

    if mode not in MODES:
        raise PlanError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    target = parse_minimum_os(minimum_os, mode)
    _check_plan(qm, mode)
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise PlanError(f"{path}: a Core ML ML program is saved as a directory ending in .mlpackage")
    prog, _, input_types = build_program(qm, mode, target, image_input, weight_threshold)
    graph = qm.float_model.graph
    classifier = None
    if class_labels is not None:
        if len(graph.outputs) != 1:
            raise PlanError(f"class_labels: a classifier has one output, this model has {len(graph.outputs)}")
        out = prog.functions["main"].outputs[0]
        classifier = ct.ClassifierConfig(
            _labels(class_labels, graph.tensors[graph.outputs[0]].shape), predicted_probabilities_output=out.name
        )
    with no_pass_progress():
        model = ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=target,
            pass_pipeline=ct.PassPipeline.EMPTY,
            compute_precision=ct.precision.FLOAT32,  # the program is already fp16: nothing for coremltools to cast
            inputs=input_types,
            classifier_config=classifier,
            skip_model_load=True,
        )
    model.author = author
    model.version = version
    model.short_description = description or f"{qm.float_model.name}: edgeq {qm.plan.scheme} plan, Core ML mode {mode}"
    meta = model.user_defined_metadata
    meta.pop("com.github.apple.coremltools.conversion_date", None)  # same inputs, same bytes
    meta[EDGEQ_METADATA_PREFIX + "version"] = __version__
    meta.update(_export_metadata(mode, target, image_input, weight_threshold))
    meta[EDGEQ_METADATA_PREFIX + "scheme"] = qm.plan.scheme
    meta[EDGEQ_METADATA_PREFIX + "model_sha256"] = qm.plan.model_sha256
    meta[EDGEQ_METADATA_PREFIX + "plan_sha256"] = hashlib.sha256(qm.plan.to_json().encode()).hexdigest()
    _describe(model, qm, mode, image_input)
    _save_atomic(model, path)
    return path


def _describe(model, qm: QuantizedModel, mode: str, image: ImageInput | None) -> None:
    """Input and output descriptions Xcode shows: the .tflite tensor each one is and how it is encoded."""
    spec = model.get_spec()
    graph = qm.float_model.graph
    for feature, t in zip(spec.description.input, graph.inputs, strict=False):
        tensor = graph.tensors[t]
        text = f'.tflite input "{tensor.name}" {list(tensor.shape)}'
        if feature.type.WhichOneof("Type") == "imageType" and image is not None:
            text += f"; pixels 0..255 become pixel * {image.scale:g} + {image.bias} before the model"
        model.input_description[feature.name] = text
    for feature in spec.description.output:
        model.output_description[feature.name] = f"edgeq {qm.plan.scheme} plan, Core ML mode {mode}"


def _save_atomic(model, path: Path) -> None:
    """Save into a sibling temporary directory, make it deterministic, then swap it in: an interrupted or failed
    export leaves the earlier package (if any) untouched and no partial package behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = tmp / path.name
        model.save(str(staged))
        _make_deterministic(staged)
        if path.exists():
            _exchange(staged, path)  # staged now holds the old package, removed below
        else:
            os.rename(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _make_deterministic(package: Path) -> None:
    """coremltools names package items with random UUIDs and serializes protobuf maps in hash order: replace
    the UUIDs by ones derived from the item paths and re-serialize the spec deterministically (without
    coremltools' buildInfo attribute)."""
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    renamed = {}
    for key, item in manifest["itemInfoEntries"].items():
        renamed[key] = str(uuid.uuid5(uuid.NAMESPACE_URL, "edgeq:" + item["path"])).upper()
    manifest["itemInfoEntries"] = {renamed[k]: v for k, v in sorted(manifest["itemInfoEntries"].items(),
                                                                     key=lambda kv: renamed[kv[0]])}  # fmt: skip
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")
    from coremltools.proto import Model_pb2

    spec_path = package / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    # coremltools' build-info dictionary repeats what the metadata already says (its version), in ~160
    # bytes of type description per package: bytes on a phone.
    if "buildInfo" in spec.mlProgram.attributes:
        del spec.mlProgram.attributes["buildInfo"]
    spec_path.write_bytes(spec.SerializeToString(deterministic=True))


def _exchange(a: Path, b: Path) -> None:
    """Swap two directories in one step (renameat2 RENAME_EXCHANGE); two renames where the kernel lacks it."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
    old = b.with_name(b.name + ".old")
    os.rename(b, old)
    os.rename(a, b)
    os.rename(old, a)
