"""Expand TFLite's sparse tensor format to dense arrays.

Some converter-made float models (e.g. MediaPipe's detectors) store constant weights sparse; edgeq works on and
writes dense tensors, so the reader expands them here. The layout follows LiteRT's FormatConverter::SparseToDense:
the tensor is walked level by level in `traversal_order` (the original dimensions, then the block dimensions
named by `block_map`); a DENSE level visits every coordinate, a SPARSE_CSR level visits the coordinates listed in
`array_indices[array_segments[p]:array_segments[p + 1]]` for parent position p, and values are consumed in walk
order. The file is untrusted, so every segment and index is checked before it is used.

A block's size is the dense_size of the level that traverses that block dimension, as the schema defines it;
LiteRT reads the level at index traversal_order[rank + k] instead, which is the same level whenever the block
dimensions are traversed in order (as converters write them).
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import ModelFormatError
from edgeq.ir.graph import Graph

# A sparse tensor's dense form is materialised; refuse shapes whose dense form could not reasonably be held.
MAX_DENSE_ELEMENTS = 1 << 30


def packed_values(raw: bytes, dtype: str, where: str) -> np.ndarray:
    """The buffer of a sparse tensor is just its stored values, in traversal order."""
    if dtype in ("int4", "string"):
        raise ModelFormatError(f"{where}: sparse {dtype} tensors are not supported")
    itemsize = np.dtype(dtype).itemsize
    if len(raw) % itemsize:
        raise ModelFormatError(f"{where}: sparse buffer of {len(raw)} bytes is not a whole number of {dtype} values")
    return np.frombuffer(raw, dtype=np.dtype(dtype))


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: schema.SparsityParametersT, where: str) -> np.ndarray:
    """The dense array of `shape` (dtype of `values`) that the sparse `values` and `sparsity` describe."""
    rank = len(shape)
    if rank == 0 or any(d < 0 for d in shape):
        raise ModelFormatError(f"{where}: sparse tensor has shape {list(shape)}, expected a non-scalar shape")
    dense_count = int(np.prod(shape, dtype=object))
    if dense_count > MAX_DENSE_ELEMENTS:
        raise ModelFormatError(f"{where}: sparse tensor of shape {list(shape)} is too large to expand")
    order = _ints(sparsity.traversalOrder)
    block_map = _ints(sparsity.blockMap)
    metadata = list(sparsity.dimMetadata or [])
    levels = rank + len(block_map)
    if len(order) != levels or len(metadata) != levels:
        raise ModelFormatError(
            f"{where}: sparsity has {len(order)} traversal entries and {len(metadata)} dim_metadata entries, "
            f"shape {list(shape)} with {len(block_map)} block dimensions needs {levels} of each"
        )
    if sorted(order[:rank]) != list(range(rank)) or sorted(order[rank:]) != list(range(rank, levels)):
        raise ModelFormatError(
            f"{where}: traversal_order {order} must permute dimensions 0..{rank - 1}, then block dimensions "
            f"{rank}..{levels - 1}"
        )
    if block_map != sorted(set(block_map)) or any(b < 0 or b >= rank for b in block_map):
        raise ModelFormatError(f"{where}: block_map {block_map} must list increasing dimensions of 0..{rank - 1}")
    level_of = {dim: level for level, dim in enumerate(order)}
    sizes = list(shape)  # extent of each expanded dimension: blocks per original dimension, then block sizes
    for k, dim in enumerate(block_map):
        md = metadata[level_of[rank + k]]
        block = int(md.denseSize)
        if md.format != schema.DimensionType.DENSE or block <= 0 or shape[dim] % block:
            raise ModelFormatError(
                f"{where}: block dimension {rank + k} over dimension {dim} (size {shape[dim]}) must be DENSE "
                f"with a dense_size dividing it, got format {md.format} dense_size {block}"
            )
        sizes[dim] = shape[dim] // block
        sizes.append(block)
    level_sizes = [sizes[dim] for dim in order]
    arrays = [_level_arrays(md, level, level_sizes[level], where) for level, md in enumerate(metadata)]
    _check_counts(arrays, level_sizes, len(values), where)

    coords: list[np.ndarray] = []  # per level, the coordinate of every position reached so far
    count = 1
    for level, (segments, indices) in enumerate(arrays):
        if segments is None or indices is None:  # DENSE: every position expands to all coordinates of this level
            size = level_sizes[level]
            coords = [c.repeat(size) for c in coords]
            coords.append(np.tile(np.arange(size, dtype=np.int64), count))
            count *= size
        else:
            coords = [c.repeat(np.diff(segments)) for c in coords]
            coords.append(indices)
            count = len(indices)

    dense_index = [coords[level_of[d]] for d in range(rank)]
    for k, dim in enumerate(block_map):
        dense_index[dim] = dense_index[dim] * sizes[rank + k] + coords[level_of[rank + k]]
    flat = np.ravel_multi_index(tuple(dense_index), shape)
    if len(np.unique(flat)) != len(flat):
        raise ModelFormatError(f"{where}: sparse indices name the same element more than once")
    out = np.zeros(dense_count, dtype=values.dtype)
    out[flat] = values
    return out.reshape(shape)


def fold_densify(graph: Graph, where: str) -> None:
    """Drop DENSIFY ops on constants, whose outputs become the (already dense) constant.

    The reader expands sparse constants, and LiteRT refuses a DENSIFY whose input is not sparse, so the op that
    expanded them at run time has to go; its output tensor carries the dense weights instead.
    """
    keep = []
    for op in graph.ops:
        densifies = op.kind == "DENSIFY" and op.inputs and op.inputs[0] >= 0 and op.outputs
        src = graph.tensors[op.inputs[0]] if densifies else None
        if src is None or src.data is None:
            keep.append(op)
            continue
        dst = graph.tensors[op.outputs[0]]
        if dst.shape != src.shape or dst.dtype != src.dtype:
            raise ModelFormatError(
                f'{where}: DENSIFY turns "{src.name}" ({src.dtype} {list(src.shape)}) into "{dst.name}" '
                f"({dst.dtype} {list(dst.shape)}), expected the same type and shape"
            )
        dst.data = src.data
    graph.ops = keep


def _ints(values) -> list[int]:
    return [int(v) for v in (values if values is not None else [])]


def _level_arrays(
    md: schema.DimensionMetadataT, level: int, size: int, where: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(segments, indices) of a SPARSE_CSR level, (None, None) for a DENSE one; checks what needs no context."""
    if md.format == schema.DimensionType.DENSE:
        if int(md.denseSize) != size:
            raise ModelFormatError(f"{where}: dense level {level} has dense_size {md.denseSize}, expected {size}")
        return None, None
    if md.format != schema.DimensionType.SPARSE_CSR:
        raise ModelFormatError(f"{where}: level {level} has unknown dimension format {md.format}")
    segments = _vector(md.arraySegments, md.arraySegmentsType, f"{where}: level {level} array_segments")
    indices = _vector(md.arrayIndices, md.arrayIndicesType, f"{where}: level {level} array_indices")
    if len(segments) == 0 or segments[0] != 0 or np.any(np.diff(segments) < 0):
        raise ModelFormatError(f"{where}: level {level} array_segments must start at 0 and never decrease")
    if segments[-1] != len(indices):
        raise ModelFormatError(
            f"{where}: level {level} array_segments end at {segments[-1]}, but there are {len(indices)} indices"
        )
    if len(indices) and (indices.min() < 0 or indices.max() >= size):
        raise ModelFormatError(
            f"{where}: level {level} array_indices range {indices.min()}..{indices.max()} leaves 0..{size - 1}"
        )
    return segments, indices


def _vector(vector, kind: int, what: str) -> np.ndarray:
    """The Int32/Uint16/Uint8 union member's values as int64 (the types differ only in width)."""
    known = (
        schema.SparseIndexVector.Int32Vector,
        schema.SparseIndexVector.Uint16Vector,
        schema.SparseIndexVector.Uint8Vector,
    )
    if vector is None or kind not in known:
        raise ModelFormatError(f"{what} is missing (index vector type {kind})")
    return np.asarray(vector.values if vector.values is not None else [], dtype=np.int64).reshape(-1)


def _check_counts(
    arrays: list[tuple[np.ndarray | None, np.ndarray | None]], level_sizes: list[int], stored: int, where: str
) -> None:
    """Count positions level by level before expanding anything, so no level materialises more than the file backs."""
    count = 1
    for level, (segments, indices) in enumerate(arrays):
        if segments is None or indices is None:
            count *= level_sizes[level]
            continue
        if len(segments) != count + 1:
            raise ModelFormatError(
                f"{where}: level {level} has {len(segments)} array_segments, its {count} parent positions need "
                f"{count + 1}"
            )
        count = len(indices)
    if count != stored:
        raise ModelFormatError(f"{where}: sparsity describes {count} stored values, the buffer holds {stored}")
