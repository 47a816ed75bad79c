"""Reader of a Core ML weight blob file (`weights/weight.bin`), written from the MILBlob storage format.

edgeq reads its packages back to prove what they hold, so this reader does not trust the file: every
offset, size, dtype code and sentinel is checked against the file before a byte of data is used, and
a violation is a CoreMLError naming the blob and the bad value.

Layout (coremltools mlmodel/src/MILBlob/Blob/StorageFormat.hpp, little-endian): a 64-byte header
{uint32 count, uint32 version = 2, reserved}; each blob is a 64-byte metadata record {uint32 sentinel
0xDEADBEEF, uint32 mil_dtype, uint64 sizeInBytes, uint64 offset, uint64 padding_size_in_bits, reserved}
at the offset a program's BlobFileValue names, and its data at the record's `offset`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from edgeq.errors import CoreMLError

HEADER_SIZE = 64
METADATA_SIZE = 64
SENTINEL = 0xDEADBEEF
STORAGE_VERSION = 2

# BlobDataType codes (MILBlob/Blob/BlobDataType.hpp) -> MIL dtype name.
BLOB_DTYPES = {
    1: "fp16", 2: "fp32", 3: "uint8", 4: "int8", 5: "bf16", 6: "int16", 7: "uint16", 8: "int4",
    9: "uint1", 10: "uint2", 11: "uint4", 12: "uint3", 13: "uint6", 14: "int32", 15: "uint32",
    16: "fp8e4m3fn", 17: "fp8e5m2",
}

# Byte-aligned MIL dtypes as stored (little-endian) and the sub-byte ones with their width in bits.
BYTE_ALIGNED = {
    "fp16": np.dtype("<f2"), "fp32": np.dtype("<f4"), "int8": np.dtype("i1"), "uint8": np.dtype("u1"),
    "int16": np.dtype("<i2"), "uint16": np.dtype("<u2"), "int32": np.dtype("<i4"), "uint32": np.dtype("<u4"),
}
SUB_BYTE_BITS = {"int4": 4, "uint4": 4, "uint1": 1, "uint2": 2, "uint3": 3, "uint6": 6}


def packed_size(dtype: str, count: int) -> int:
    """Bytes that `count` elements of `dtype` occupy (sub-byte types packed, the last byte padded)."""
    if dtype in SUB_BYTE_BITS:
        return -(-count * SUB_BYTE_BITS[dtype] // 8)
    return count * BYTE_ALIGNED[dtype].itemsize


def unpack_bits(raw: bytes, bits: int, count: int, signed: bool) -> np.ndarray:
    """`count` elements of `bits` bits packed from the least significant bit of each byte upward.

    This is MILBlob's sub-byte layout (for 4 bits: the low nibble is the first element); an element
    may straddle two bytes (3 and 6 bits). Signed values are two's complement in `bits` bits.
    """
    data = np.frombuffer(raw, np.uint8)
    bit_array = np.unpackbits(data, bitorder="little")[: count * bits].reshape(count, bits)
    values = bit_array.astype(np.int16) @ (1 << np.arange(bits, dtype=np.int16))
    if signed:
        values = values - ((values >> (bits - 1)) << bits)
        return values.astype(np.int8)
    return values.astype(np.uint8)


def decode(raw: bytes, dtype: str, count: int) -> np.ndarray:
    """The flat array of `count` elements of MIL `dtype` in `raw` (whose length the caller checked)."""
    if dtype in SUB_BYTE_BITS:
        return unpack_bits(raw, SUB_BYTE_BITS[dtype], count, signed=dtype == "int4")
    return np.frombuffer(raw, BYTE_ALIGNED[dtype], count).astype(BYTE_ALIGNED[dtype].newbyteorder("="))


class BlobFile:
    """One weight file, read whole and validated lazily blob by blob."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.data = self.path.read_bytes()
        except OSError as e:
            raise CoreMLError(f"{self.path}: cannot read the weight file ({e})") from e
        if len(self.data) < HEADER_SIZE:
            raise CoreMLError(
                f"{self.path}: {len(self.data)} bytes, shorter than the {HEADER_SIZE}-byte storage header"
            )
        self.count, version = struct.unpack_from("<II", self.data, 0)
        if version != STORAGE_VERSION:
            raise CoreMLError(f"{self.path}: storage header version {version}, expected {STORAGE_VERSION}")

    def read(self, offset: int, dtype: str, count: int) -> np.ndarray:
        """The `count` elements of MIL `dtype` held by the blob whose metadata record is at `offset`."""
        size = len(self.data)
        where = f"{self.path.name}: blob at offset {offset}"
        if offset < HEADER_SIZE or offset + METADATA_SIZE > size:
            raise CoreMLError(f"{where}: metadata [{offset}, {offset + METADATA_SIZE}) outside the file ({size} bytes)")
        sentinel, code, nbytes, data_offset, padding_bits = struct.unpack_from("<IIQQQ", self.data, offset)
        if sentinel != SENTINEL:
            raise CoreMLError(f"{where}: sentinel 0x{sentinel:08X} is not 0x{SENTINEL:08X}")
        stored = BLOB_DTYPES.get(code)
        if stored is None:
            raise CoreMLError(f"{where}: unknown mil_dtype code {code}")
        if stored != dtype:
            raise CoreMLError(f"{where}: blob holds {stored}, the program declares {dtype}")
        if data_offset < offset + METADATA_SIZE or data_offset + nbytes > size:
            raise CoreMLError(
                f"{where}: data [{data_offset}, {data_offset + nbytes}) lies outside the file ({size} bytes) "
                f"or over its own metadata"
            )
        if dtype not in BYTE_ALIGNED and dtype not in SUB_BYTE_BITS:
            raise CoreMLError(f"{where}: dtype {dtype} is not supported by the host evaluator")
        need = packed_size(dtype, count)
        if nbytes != need:
            raise CoreMLError(f"{where}: sizeInBytes {nbytes}, but {count} x {dtype} need {need}")
        if dtype in SUB_BYTE_BITS:
            # StorageReader.cpp: elements = (sizeInBytes * 8 - padding_size_in_bits) / bits.
            unused = nbytes * 8 - count * SUB_BYTE_BITS[dtype]
            if padding_bits != unused:
                raise CoreMLError(f"{where}: padding_size_in_bits {padding_bits}, {count} x {dtype} leave {unused}")
        return decode(self.data[data_offset : data_offset + nbytes], dtype, count)
