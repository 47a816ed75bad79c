"""Fashion-MNIST from Debian's `dataset-fashion-mnist`: real calibration and evaluation data, offline.

The IDX files are parsed here (gzip + struct) so the SDK needs no dataset library and no network.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
ROOT_ENV_VAR = "EDGEQ_FASHION_MNIST"

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_IMAGE_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABEL_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_IMAGE_SIDE = 28
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def fashion_mnist(split: str = "test", root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split as uint8 images [N, 28, 28] and uint8 labels [N].

    The root is, in order: `root`, $EDGEQ_FASHION_MNIST, then Debian's install path.
    """
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be one of {sorted(_SPLIT_PREFIX)}, got {split!r}")
    base = Path(root if root is not None else os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT)
    prefix = _SPLIT_PREFIX[split]
    images = _read_idx(base / f"{prefix}-images-idx3-ubyte.gz", _IMAGE_MAGIC)
    labels = _read_idx(base / f"{prefix}-labels-idx1-ubyte.gz", _LABEL_MAGIC)
    if images.shape[1:] != (_IMAGE_SIDE, _IMAGE_SIDE):
        raise ValueError(f"{base}: images are {images.shape[1:]}, expected ({_IMAGE_SIDE}, {_IMAGE_SIDE})")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{base}: {images.shape[0]} images but {labels.shape[0]} labels in split {split!r}")
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{base}: label {int(labels.max())} is out of range 0-{len(FASHION_MNIST_CLASSES) - 1}")
    return images, labels


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> float32 [N, 28, 28, 1] in [0, 1]: the input the shipped CNN was trained on."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[..., np.newaxis]


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one gzipped IDX file, checking the header against the payload so truncation is caught."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST file not found: {path}. Install it with `apt-get install dataset-fashion-mnist`, "
            f"or point `root` / ${ROOT_ENV_VAR} at a directory holding the four *-ubyte.gz files."
        )
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable gzip file ({e})") from e
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise ValueError(f"{path}: IDX magic number is {found:#010x}, expected {magic:#010x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: {len(data)} bytes, too short for a {ndim}-dimensional IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes) but payload is {len(data) - header}")
    # Copy so callers get an ordinary writeable array, not a read-only view of the decompressed bytes.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()
