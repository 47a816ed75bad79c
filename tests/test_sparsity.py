"""Sparse-stored constants: densify matches hand-built dense tensors, rejects corrupt metadata with
ModelFormatError, and real sparse MediaPipe models load into dense graphs that LiteRT runs identically."""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

import edgeq
from edgeq.errors import ModelFormatError
from edgeq.ir.sparsity import densify

DENSE = schema.DimensionType.DENSE
CSR = schema.DimensionType.SPARSE_CSR
VECTORS = {
    schema.SparseIndexVector.Int32Vector: schema.Int32VectorT,
    schema.SparseIndexVector.Uint16Vector: schema.Uint16VectorT,
    schema.SparseIndexVector.Uint8Vector: schema.Uint8VectorT,
}
# Real MediaPipe models whose weights are stored sparse, taken out of the wheel the zoo caches.
SPARSE_MEMBERS = [
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
    "mediapipe/modules/pose_detection/pose_detection.tflite",
]


def _sparse_model(member: str) -> Path:
    from bench import zoo

    return zoo.wheel_model(zoo.MEDIAPIPE_WHEEL, member)


def _dense(size: int) -> schema.DimensionMetadataT:
    md = schema.DimensionMetadataT()
    md.format, md.denseSize = DENSE, size
    return md


def _csr(segments: list[int], indices: list[int], kind: int = schema.SparseIndexVector.Int32Vector):
    md = schema.DimensionMetadataT()
    md.format = CSR
    md.arraySegmentsType = md.arrayIndicesType = kind
    md.arraySegments, md.arrayIndices = VECTORS[kind](), VECTORS[kind]()
    md.arraySegments.values, md.arrayIndices.values = list(segments), list(indices)
    return md


def _sparsity(order: list[int], metadata: list, block_map: list[int] | None = None) -> schema.SparsityParametersT:
    sp = schema.SparsityParametersT()
    sp.traversalOrder, sp.blockMap, sp.dimMetadata = order, block_map, metadata
    return sp


@pytest.mark.parametrize("kind", list(VECTORS))
def test_csr_matrix(kind: int) -> None:
    expected = np.array([[0, 1, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]], dtype=np.float16)
    sp = _sparsity([0, 1], [_dense(3), _csr([0, 2, 2, 4], [1, 3, 0, 3], kind)])
    out = densify(np.array([1, 2, 3, 4], dtype=np.float16), (3, 4), sp, "t")
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, expected)


def test_column_major_traversal() -> None:
    """traversal_order [1, 0] stores columns: CSC, values in column order."""
    expected = np.array([[1, 0, 2], [0, 3, 0]], dtype=np.float32)
    sp = _sparsity([1, 0], [_dense(3), _csr([0, 1, 2, 3], [0, 1, 0])])
    np.testing.assert_array_equal(densify(np.array([1, 3, 2], dtype=np.float32), (2, 3), sp, "t"), expected)


@pytest.mark.parametrize(
    ("shape", "block_map", "block", "segments", "indices", "expected"),
    [
        # 2x1 blocks along dimension 0: rows 0-1 keep block column 0, rows 2-3 keep block column 1.
        ((4, 2), [0], 2, [0, 1, 2], [0, 1], [[1, 0], [2, 0], [0, 3], [0, 4]]),
        # 1x4 blocks along dimension 1 (TensorFlow's usual pattern): row 0 keeps block 1, row 1 keeps block 0.
        ((2, 8), [1], 4, [0, 1, 2], [1, 0], [[0, 0, 0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 0, 0, 0, 0]]),
    ],
)
def test_block_sparse(shape, block_map, block, segments, indices, expected) -> None:
    blocked = [d // block if i in block_map else d for i, d in enumerate(shape)]
    sp = _sparsity([0, 1, 2], [_dense(blocked[0]), _csr(segments, indices), _dense(block)], block_map)
    values = np.arange(1, np.count_nonzero(expected) + 1, dtype=np.float32)
    np.testing.assert_array_equal(densify(values, shape, sp, "t"), np.array(expected, dtype=np.float32))


@pytest.mark.parametrize(
    ("segments", "indices", "values", "message"),
    [
        ([0, 2, 2, 4], [1, 4, 0, 3], 4, "array_indices range"),  # index past the dimension
        ([0, 2, 1, 4], [1, 3, 0, 3], 4, "never decrease"),  # segments not non-decreasing
        ([0, 2, 2, 5], [1, 3, 0, 3], 4, "but there are 4 indices"),  # segments past the indices
        ([0, 2, 2, 4], [1, 3, 0, 3], 3, "buffer holds 3"),  # more positions than stored values
        ([0, 2, 4], [1, 3, 0, 3], 4, "3 parent positions need 4"),  # too few segments
        ([0, 2, 2, 4], [1, 1, 0, 3], 4, "more than once"),  # two values for one element
    ],
)
def test_corrupt_metadata_is_a_format_error(segments, indices, values, message) -> None:
    sp = _sparsity([0, 1], [_dense(3), _csr(segments, indices)])
    with pytest.raises(ModelFormatError, match=f'tensor 7 "w".*{message}'):
        densify(np.ones(values, dtype=np.float32), (3, 4), sp, 'tensor 7 "w"')


@pytest.mark.parametrize(
    "sparsity",
    [
        _sparsity([0], [_dense(3)]),  # too few levels
        _sparsity([0, 0], [_dense(3), _dense(4)]),  # traversal order is not a permutation
        _sparsity([0, 1], [_dense(3), _dense(5)]),  # dense size disagrees with the shape
        _sparsity([0, 1, 2], [_dense(3), _dense(1), _dense(3)], [1]),  # block does not divide the dimension
        _sparsity([0, 1], [_dense(3), _csr([0], [])]),  # segments missing for 2 of 3 rows
    ],
)
def test_inconsistent_structure_is_a_format_error(sparsity) -> None:
    with pytest.raises(ModelFormatError, match=r"^w: "):
        densify(np.ones(12, dtype=np.float32), (3, 4), sparsity, "w")


def _run(model: dict, x: np.ndarray) -> list[np.ndarray]:
    interpreter = Interpreter(**model)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def _input_shape(path: Path) -> tuple[int, ...]:
    interpreter = Interpreter(model_path=str(path))
    return tuple(int(d) for d in interpreter.get_input_details()[0]["shape"])


@pytest.mark.zoo
@pytest.mark.parametrize("member", SPARSE_MEMBERS, ids=lambda m: Path(m).stem)
def test_sparse_mediapipe_model_loads_runs_and_quantizes(member: str) -> None:
    path = _sparse_model(member)
    model = edgeq.load(path)
    assert not any(op.kind == "DENSIFY" for op in model.graph.ops)
    shape = _input_shape(path)
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    expected = _run({"model_path": str(path)}, x)
    actual = _run({"model_content": model.tflite}, x)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)

    samples = np.random.default_rng(1).uniform(-1, 1, (8, *shape[1:])).astype(np.float32)
    quantized = edgeq.quantize(model, edgeq.calibration.arrays(samples), progress=False)
    assert quantized.tflite


@pytest.mark.zoo
def test_corrupt_sparse_model_file_names_the_tensor() -> None:
    model = schema.ModelT.InitFromPackedBuf(_sparse_model(SPARSE_MEMBERS[0]).read_bytes(), 0)
    index, tensor = next((i, t) for i, t in enumerate(model.subgraphs[0].tensors) if t.sparsity is not None)
    segments = tensor.sparsity.dimMetadata[-1].arraySegments
    segments.values = segments.values.copy()
    segments.values[-1] = 0  # the last segment now ends before it starts
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ModelFormatError, match=f'tensor {index} ".*never decrease'):
        edgeq.load(bytes(builder.Output()))
