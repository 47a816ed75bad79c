"""Calibration data sources. Every source streams: memory is bounded by one batch, never by the data set.

A source is any object with `batches(specs) -> Iterator[list[np.ndarray]]` yielding, per batch, one
array per model input (batch dimension first). `validated` wraps a source and turns every way user
data can be wrong (count, shape, dtype, NaN/Inf, emptiness) into a CalibrationDataError that says where.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from PIL import Image

from edgeq.errors import CalibrationDataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}
# Which array kinds each input kind accepts; validated() casts them to the input's dtype.
_ACCEPTED_KINDS = {"f": "fiub", "i": "iub", "u": "iub", "b": "b"}


@dataclass(frozen=True)
class InputSpec:
    """One model input. Dimension 0 is the batch; -1 or None marks a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


class CalibrationSource(Protocol):
    """What quantize() accepts: anything that can (re)yield batches for given model inputs."""

    def batches(self, specs: list[InputSpec]) -> Iterator[list[np.ndarray]]: ...


# ---------------------------------------------------------------------------------------------- arrays


class ArraySource:
    """Slices in-memory or memory-mapped arrays, so a memmapped .npy is read one batch at a time."""

    def __init__(
        self,
        xs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
        batch_size: int = 16,
        limit: int | None = None,
    ) -> None:
        _check_batching(batch_size, limit)
        self._names = [str(k) for k in xs] if isinstance(xs, Mapping) else None
        self._xs = list(xs.values()) if isinstance(xs, Mapping) else list(xs)
        if not self._xs:
            raise CalibrationDataError("arrays() needs at least one array")
        labels = self._names or [f"#{i}" for i in range(len(self._xs))]
        if any(np.ndim(x) == 0 for x in self._xs):
            raise CalibrationDataError("calibration arrays need a batch dimension; got a scalar")
        lengths = {label: len(x) for label, x in zip(labels, self._xs, strict=True)}
        if len(set(lengths.values())) > 1:
            raise CalibrationDataError(f"calibration arrays have different numbers of samples: {lengths}")
        n = len(self._xs[0])
        self._n = n if limit is None else min(n, limit)
        self._batch_size = batch_size

    def batches(self, specs: list[InputSpec]) -> Iterator[list[np.ndarray]]:
        xs = self._xs
        if self._names is not None:
            xs = _by_name(dict(zip(self._names, xs, strict=True)), specs, "calibration arrays")
        for start in range(0, self._n, self._batch_size):
            stop = min(start + self._batch_size, self._n)
            yield [x[start:stop] for x in xs]


def arrays(*xs: Any, batch_size: int = 16, limit: int | None = None) -> ArraySource:
    """Calibrate from arrays, one per model input in input order (batch first), or one dict name -> array."""
    if len(xs) == 1 and isinstance(xs[0], Mapping):
        return ArraySource({str(k): np.asarray(v) for k, v in xs[0].items()}, batch_size, limit)
    return ArraySource([np.asarray(x) for x in xs], batch_size, limit)


# ------------------------------------------------------------------------------------------- generator


class GeneratorSource:
    """Pulls items lazily from an iterable; each item is one sample or one batch."""

    def __init__(self, source: Iterable[Any] | Callable[[], Iterable[Any]]) -> None:
        self._source = source
        self._consumed = False

    def batches(self, specs: list[InputSpec]) -> Iterator[list[np.ndarray]]:
        source = self._source
        if not isinstance(source, Iterable):
            source = source()
        elif iter(source) is source:  # a generator object: a second pass would silently see nothing
            if self._consumed:
                raise CalibrationDataError(
                    "this calibration generator was already consumed; pass a function that returns a "
                    "new generator (generator(lambda: ...)) so the data can be read more than once"
                )
            self._consumed = True
        for index, item in enumerate(source):
            yield _item_arrays(item, specs, index)


def generator(source: Iterable[Any] | Callable[[], Iterable[Any]]) -> GeneratorSource:
    """Calibrate from an iterable, a generator, or a zero-argument callable returning one.

    Each item is an array, a list/tuple of arrays (one per input) or a dict name -> array. An array
    whose rank is the input's rank minus one is a single sample and gets a batch dimension of 1.
    Prefer a callable: it can be iterated again (calibration, then fidelity measurement).
    """
    if not isinstance(source, Iterable) and not callable(source):
        raise CalibrationDataError(
            f"generator() takes an iterable or a function returning one, got {type(source).__name__}"
        )
    return GeneratorSource(source)


def _item_arrays(item: Any, specs: list[InputSpec], index: int) -> list[np.ndarray]:
    if isinstance(item, Mapping):
        xs = _by_name(item, specs, f"calibration item {index}")
    elif isinstance(item, list | tuple):
        xs = list(item)
    else:
        xs = [item]
    if len(xs) != len(specs):
        return xs  # validated() reports the count mismatch with the input names
    out = []
    for x, spec in zip(xs, specs, strict=True):
        arr = _as_array(x, spec, f"calibration item {index}")
        out.append(arr[np.newaxis] if arr.ndim == len(spec.shape) - 1 else arr)
    return out


def _by_name(named: Mapping[str, Any], specs: list[InputSpec], what: str) -> list[Any]:
    names = [s.name for s in specs]
    missing = [n for n in names if n not in named]
    extra = [k for k in named if k not in names]
    if missing or extra:
        raise CalibrationDataError(
            f"{what}: keys {sorted(named)} do not match the model inputs {names} (missing {missing}, unknown {extra})"
        )
    return [named[n] for n in names]


# ---------------------------------------------------------------------------------------------- images


class ImageFolderSource:
    """Decodes, crops, resizes and normalises images one batch at a time."""

    def __init__(
        self,
        folder: Path,
        size: tuple[int, int] | None,
        mean: np.ndarray,
        std: np.ndarray,
        layout: str,
        channels: int,
        batch_size: int,
        limit: int | None,
        resample: Image.Resampling,
        crop: str,
    ) -> None:
        self._folder = folder
        self._size = size
        self._mean = mean
        self._std = std
        self._layout = layout
        self._channels = channels
        self._batch_size = batch_size
        self._limit = limit
        self._resample = resample
        self._crop = crop

    def batches(self, specs: list[InputSpec]) -> Iterator[list[np.ndarray]]:
        if len(specs) != 1:
            raise CalibrationDataError(
                f"an image folder feeds single-input models; this model has {len(specs)} inputs "
                f"{[s.name for s in specs]}: use arrays() or generator()"
            )
        size = self._size or _spatial_size(specs[0], self._layout)
        files = _image_files(self._folder)[: self._limit]
        if not files:
            kinds = ", ".join(IMAGE_EXTENSIONS)
            raise CalibrationDataError(f"no images ({kinds}) found under {self._folder}")
        batch: list[np.ndarray] = []
        for path in files:
            batch.append(self._load(path, size))
            if len(batch) == self._batch_size:
                yield [np.stack(batch)]
                batch = []
        if batch:
            yield [np.stack(batch)]

    def _load(self, path: Path, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        try:
            with Image.open(path) as img:
                img = img.convert("L" if self._channels == 1 else "RGB")
                box = _center_box(img.width, img.height, w, h) if self._crop == "center" else None
                img = img.resize((w, h), self._resample, box=box)
        except Exception as e:  # decoders raise OSError, SyntaxError, ValueError...: all mean "bad file"
            reason = f"{type(e).__name__}: {e}"
            raise CalibrationDataError(f"cannot read calibration image {path} ({reason})") from e
        x = np.asarray(img, dtype=np.float32).reshape(h, w, self._channels)
        x = (x - self._mean) / self._std
        return x.transpose(2, 0, 1) if self._layout == "NCHW" else x  # np.stack makes the batch contiguous


def images(
    folder: str | os.PathLike,
    size: tuple[int, int] | None = None,
    mean: float | Sequence[float] = 0.0,
    std: float | Sequence[float] = 1.0,
    layout: str = "NHWC",
    channels: int = 3,
    batch_size: int = 16,
    limit: int | None = None,
    resize: str = "bilinear",
    crop: str = "center",
) -> ImageFolderSource:
    """Calibrate a single-input image model from a folder (recursive, sorted, hidden entries skipped).

    Pixels are 0..255 before normalisation: `(pixel - mean) / std` with scalar or per-channel mean/std,
    so [0, 1] inputs want std=255 and [-1, 1] inputs mean=std=127.5. `size` is (height, width) and
    defaults to the model input's. `crop="center"` keeps the aspect ratio by cropping before resizing;
    `crop="none"` stretches.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationDataError(f"calibration image folder {folder} does not exist or is not a directory")
    _check_batching(batch_size, limit)
    if layout not in ("NHWC", "NCHW"):
        raise CalibrationDataError(f"image layout must be 'NHWC' or 'NCHW', got {layout!r}")
    if channels not in (1, 3):
        raise CalibrationDataError(f"images give 1 (grayscale) or 3 (RGB) channels; the input wants {channels}")
    if resize not in _RESAMPLING:
        raise CalibrationDataError(f"resize must be one of {sorted(_RESAMPLING)}, got {resize!r}")
    if crop not in ("center", "none"):
        raise CalibrationDataError(f"crop must be 'center' or 'none', got {crop!r}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise CalibrationDataError(f"image size must be (height, width) with positive sides, got {size}")
    mean_arr = _per_channel(mean, channels, "mean")
    std_arr = _per_channel(std, channels, "std")
    if np.any(std_arr == 0):
        raise CalibrationDataError(f"image std must be non-zero, got {std}")
    size = (int(size[0]), int(size[1])) if size is not None else None
    return ImageFolderSource(
        folder, size, mean_arr, std_arr, layout, channels, batch_size, limit, _RESAMPLING[resize], crop
    )


def _image_files(folder: Path) -> list[Path]:
    """Image files under `folder` in a stable order, skipping hidden files and folders (.git, ._x.jpg)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root, f) for f in files if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _per_channel(value: float | Sequence[float], channels: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size not in (1, channels):
        raise CalibrationDataError(f"image {what} needs 1 or {channels} values (one per channel), got {arr.size}")
    return arr


def _spatial_size(spec: InputSpec, layout: str) -> tuple[int, int]:
    dims = spec.shape[2:4] if layout == "NCHW" else spec.shape[1:3]
    if len(spec.shape) != 4 or any(d is None or d < 1 for d in dims):
        raise CalibrationDataError(
            f"input '{spec.name}' has shape {spec.shape}: pass size=(height, width) to images() "
            f"(expected a 4-D {layout} input with a fixed height and width)"
        )
    return int(dims[0]), int(dims[1])


def _center_box(width: int, height: int, out_w: int, out_h: int) -> tuple[float, float, float, float]:
    """The largest centered box of the output's aspect ratio, so resizing does not distort."""
    if width * out_h > height * out_w:  # too wide
        crop_w = height * out_w / out_h
        left = (width - crop_w) / 2
        return (left, 0.0, left + crop_w, float(height))
    crop_h = width * out_h / out_w
    top = (height - crop_h) / 2
    return (0.0, top, float(width), top + crop_h)


# ----------------------------------------------------------------------------------------- .npy / .npz


class NpzSource:
    """Reads the arrays of an .npz row block by row block straight from the zip, never whole arrays
    (np.load on an .npz would decompress each array entirely)."""

    def __init__(self, path: Path, batch_size: int, limit: int | None) -> None:
        self._path = path
        self._batch_size = batch_size
        self._limit = limit

    def batches(self, specs: list[InputSpec]) -> Iterator[list[np.ndarray]]:
        with _open_zip(self._path) as zf:
            members = {n[: -len(".npy")]: n for n in zf.namelist() if n.endswith(".npy")}
            keys = self._keys(sorted(members), specs)
            readers = [_NpyReader(zf.open(members[k]), f"{self._path}:{k}") for k in keys]
            lengths = {k: r.shape[0] for k, r in zip(keys, readers, strict=True)}
            if len(set(lengths.values())) > 1:
                raise CalibrationDataError(f"{self._path}: arrays have different sample counts {lengths}")
            n = next(iter(lengths.values()))
            if self._limit is not None:
                n = min(n, self._limit)
            for start in range(0, n, self._batch_size):
                count = min(self._batch_size, n - start)
                yield [r.read(count) for r in readers]

    def _keys(self, keys: list[str], specs: list[InputSpec]) -> list[str]:
        names = [s.name for s in specs]
        positional = [f"arr_{i}" for i in range(len(specs))]
        if set(names) <= set(keys):
            return names
        if set(positional) <= set(keys):
            return positional
        if len(keys) == 1 and len(specs) == 1:
            return keys
        raise CalibrationDataError(
            f"{self._path}: holds arrays {keys}; expected the model input names {names} or {positional} "
            f"(np.savez(path, *inputs) in model input order)"
        )


class _NpyReader:
    """Sequential reader of one .npy stream: header first, then `read(n)` returns the next n rows."""

    def __init__(self, stream: IO[bytes], where: str) -> None:
        self._stream = stream
        self._where = where
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as e:
            raise CalibrationDataError(f"{where}: not a readable .npy array ({e})") from e
        if dtype.hasobject:
            raise CalibrationDataError(f"{where}: holds Python objects; save numeric arrays")
        if not shape:
            raise CalibrationDataError(f"{where}: is a scalar; it needs a batch dimension")
        self.shape: tuple[int, ...] = shape
        self._dtype = dtype
        self._row = 0
        # Fortran order has no contiguous rows to stream; such an array is read whole, once.
        self._whole = None
        if fortran:
            data = self._read_exact(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
            self._whole = np.frombuffer(data, dtype=dtype).reshape(shape, order="F")

    def read(self, n: int) -> np.ndarray:
        if self._whole is not None:
            rows = self._whole[self._row : self._row + n]
        else:
            sample_shape = self.shape[1:]
            data = self._read_exact(n * int(np.prod(sample_shape, dtype=np.int64)) * self._dtype.itemsize)
            rows = np.frombuffer(data, dtype=self._dtype).reshape((n, *sample_shape))
        self._row += n
        return rows

    def _read_exact(self, nbytes: int) -> bytes:
        data = self._stream.read(nbytes)
        if len(data) != nbytes:
            raise CalibrationDataError(f"{self._where}: truncated after {self._row} samples")
        return data


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise CalibrationDataError(f"cannot read calibration file {path}: {e}") from e


def from_path(
    path: str | os.PathLike, *, batch_size: int = 16, limit: int | None = None, **image_kwargs: Any
) -> CalibrationSource:
    """The CLI's `--calib`: an image folder, a .npy (memory-mapped) or an .npz (streamed from the zip).

    `image_kwargs` go to images() for a folder; .npy/.npz hold model-ready inputs, so they are ignored.
    `limit` caps the number of samples for all three.
    """
    path = Path(path)
    if path.is_dir():
        return images(path, batch_size=batch_size, limit=limit, **image_kwargs)
    if not path.is_file():
        raise CalibrationDataError(f"calibration path {path} does not exist")
    _check_batching(batch_size, limit)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            x = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CalibrationDataError(f"cannot read calibration file {path}: {e}") from e
        return ArraySource([x], batch_size, limit)
    if suffix == ".npz":
        _open_zip(path).close()  # fail now, not at the first batch, on a file that is not a zip
        return NpzSource(path, batch_size, limit)
    raise CalibrationDataError(
        f"calibration path {path}: expected a folder of images, a .npy or an .npz file (got '{suffix}')"
    )


def _check_batching(batch_size: int, limit: int | None) -> None:
    if batch_size < 1:
        raise CalibrationDataError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise CalibrationDataError(f"the sample limit must be >= 0, got {limit}")


# ------------------------------------------------------------------------------------------ validation


def validated(
    source: CalibrationSource, specs: list[InputSpec], on_batch: Callable[[int], Any] | None = None
) -> Iterator[list[np.ndarray]]:
    """Yield the source's batches checked against the model inputs and cast to their dtypes.

    Errors name the input, the batch and the sample, since calibration sets are too big to inspect by
    hand. `on_batch(n)` is called with each batch's sample count (e.g. tqdm's `update`).
    """
    seen = 0
    for index, batch in enumerate(source.batches(specs)):
        checked = _check_batch(batch, specs, index, seen)
        count = checked[0].shape[0]
        if count == 0:
            continue
        seen += count
        if on_batch is not None:
            on_batch(count)
        yield checked
    if seen == 0:
        raise CalibrationDataError("calibration set is empty: the data source yielded no samples")


def _check_batch(batch: Any, specs: list[InputSpec], index: int, seen: int) -> list[np.ndarray]:
    names = [s.name for s in specs]
    where = f"calibration batch {index}"
    if not isinstance(batch, list | tuple):
        raise CalibrationDataError(
            f"{where}: a source must yield a list with one array per model input {names}, got {type(batch).__name__}"
        )
    if len(batch) != len(specs):
        raise CalibrationDataError(f"{where}: got {len(batch)} arrays for {len(specs)} model inputs {names}")
    out = []
    for x, spec in zip(batch, specs, strict=True):
        arr = _as_array(x, spec, where)
        _check_shape(arr, spec, where)
        out.append(_cast(arr, spec, where))
    counts = {s.name: a.shape[0] for s, a in zip(specs, out, strict=True)}
    if len(set(counts.values())) > 1:
        raise CalibrationDataError(f"{where}: inputs have different batch sizes {counts}")
    for arr, spec in zip(out, specs, strict=True):
        if arr.dtype.kind == "f":
            _check_finite(arr, spec, index, seen)
    return out


def _as_array(x: Any, spec: InputSpec, where: str) -> np.ndarray:
    try:
        return np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise CalibrationDataError(f"{where}, input '{spec.name}': not an array ({e})") from e


def _check_shape(arr: np.ndarray, spec: InputSpec, where: str) -> None:
    fixed = [d is not None and d >= 0 for d in spec.shape]
    ok = arr.ndim == len(spec.shape) and all(
        not f or a == d for a, d, f in zip(arr.shape[1:], spec.shape[1:], fixed[1:], strict=True)
    )
    if ok:
        return
    dims = [str(d) if f else "?" for d, f in zip(spec.shape[1:], fixed[1:], strict=True)]
    expected = ", ".join(["N", *dims])
    hint = ""
    if arr.ndim == len(spec.shape) and all(fixed[1:]) and sorted(arr.shape[1:]) == sorted(spec.shape[1:]):
        hint = "; same sizes in another order: a layout mix-up (NHWC vs NCHW)?"
    raise CalibrationDataError(
        f"{where}, input '{spec.name}': expected shape ({expected}) (N: any batch size, ?: any), "
        f"got {tuple(arr.shape)}{hint}"
    )


def _cast(arr: np.ndarray, spec: InputSpec, where: str) -> np.ndarray:
    want = np.dtype(spec.dtype)
    if arr.dtype.kind not in _ACCEPTED_KINDS.get(want.kind, want.kind):
        raise CalibrationDataError(
            f"{where}, input '{spec.name}': expected {want.name} data, got {arr.dtype.name} "
            f"which cannot be cast to {want.name}"
        )
    if want.kind in "iu" and arr.size and not np.can_cast(arr.dtype, want):
        info = np.iinfo(want)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise CalibrationDataError(
                f"{where}, input '{spec.name}': values in [{lo}, {hi}] do not fit {want.name} [{info.min}, {info.max}]"
            )
    return np.ascontiguousarray(arr, dtype=want)


def _check_finite(arr: np.ndarray, spec: InputSpec, index: int, seen: int) -> None:
    finite = np.isfinite(arr)
    if finite.all():
        return
    bad_per_sample = (~finite).reshape(arr.shape[0], -1).sum(axis=1)
    bad_samples = np.flatnonzero(bad_per_sample)
    first = int(bad_samples[0])
    nan = int(np.isnan(arr).sum())
    inf = int(bad_per_sample.sum()) - nan
    more = f" and {len(bad_samples) - 1} more sample(s) of the batch" if len(bad_samples) > 1 else ""
    raise CalibrationDataError(
        f"input '{spec.name}': {nan + inf} non-finite value(s) ({nan} NaN, {inf} Inf) in calibration "
        f"batch {index}, sample {first} of the batch (sample {seen + first} overall){more}"
    )
