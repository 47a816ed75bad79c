"""Calibration data sources: streaming, exact preprocessing, and errors that say what and where."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeq.calibrate.data import InputSpec, arrays, from_path, generator, images, validated
from edgeq.errors import CalibrationDataError

IMG = [InputSpec("image", (1, 4, 6, 3))]
TWO = [InputSpec("ids", (1, 5)), InputSpec("mask", (1, 5))]


def collect(source, specs, **kw) -> list[list[np.ndarray]]:
    return list(validated(source, specs, **kw))


# ----------------------------------------------------------------------------------------------- arrays


def test_arrays_batches_in_order_and_reports_progress():
    x = np.arange(37 * 5, dtype=np.float64).reshape(37, 5)
    seen: list[int] = []
    out = collect(arrays(x, batch_size=16), [InputSpec("x", (1, 5))], on_batch=seen.append)
    assert seen == [16, 16, 5]
    assert all(b[0].dtype == np.float32 for b in out)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in out]), x.astype(np.float32))


def test_arrays_dict_follows_model_input_order_and_limit():
    ids, mask = np.ones((10, 5)), np.zeros((10, 5))
    out = collect(arrays({"mask": mask, "ids": ids}, batch_size=4, limit=6), TWO)
    assert [b[0].shape[0] for b in out] == [4, 2]
    assert all((b[0] == 1).all() and (b[1] == 0).all() for b in out)


def test_arrays_errors_name_the_problem():
    with pytest.raises(CalibrationDataError, match=r"missing \['mask'\], unknown \['masks'\]"):
        collect(arrays({"ids": np.ones((2, 5)), "masks": np.ones((2, 5))}), TWO)
    with pytest.raises(CalibrationDataError, match="different numbers of samples"):
        arrays(np.ones((3, 5)), np.ones((4, 5)))


# -------------------------------------------------------------------------------------------- generator


def test_generator_items_can_be_samples_batches_tuples_or_dicts():
    def items():
        yield np.ones(5), np.zeros(5)  # one sample per input: gets a batch dimension
        yield {"mask": np.zeros((3, 5)), "ids": np.ones((3, 5))}  # a batch of 3, by name
        yield [np.ones((2, 5)), np.zeros((2, 5))]

    out = collect(generator(items), TWO)
    assert [b[0].shape for b in out] == [(1, 5), (3, 5), (2, 5)]
    assert all((b[0] == 1).all() and (b[1] == 0).all() for b in out)


def test_generator_callable_can_be_read_twice_but_a_generator_object_cannot():
    source = generator(lambda: (np.zeros((2, 5)) for _ in range(3)))
    assert len(collect(source, [InputSpec("x", (1, 5))])) == 3
    assert len(collect(source, [InputSpec("x", (1, 5))])) == 3

    once = generator(np.zeros((2, 5)) for _ in range(3))
    assert len(collect(once, [InputSpec("x", (1, 5))])) == 3
    with pytest.raises(CalibrationDataError, match=r"already consumed.*generator\(lambda"):
        collect(once, [InputSpec("x", (1, 5))])


def test_ten_thousand_samples_stream_one_batch_at_a_time():
    produced = 0

    def samples():
        nonlocal produced
        rng = np.random.default_rng(0)
        for _ in range(10_000):
            produced += 1
            yield rng.standard_normal((32, 32, 3), dtype=np.float32)  # 12 KiB; 120 MiB in total

    spec = [InputSpec("image", (1, 32, 32, 3))]
    consumed = 0
    tracemalloc.start()
    try:
        for batch in validated(generator(samples), spec):
            consumed += batch[0].shape[0]
            assert produced == consumed  # the source is never read ahead
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert consumed == 10_000
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MiB: the data set was materialized"


# ------------------------------------------------------------------------------------------- validation


def test_wrong_number_of_arrays():
    with pytest.raises(
        CalibrationDataError, match=r"batch 0: got 1 arrays for 2 model inputs \['ids', 'mask'\]"
    ):
        collect(generator([np.zeros((1, 5))]), TWO)


def test_shape_mismatch_names_input_expected_and_got_with_layout_hint():
    nchw = np.zeros((2, 3, 4, 6), np.float32)
    with pytest.raises(CalibrationDataError) as e:
        collect(arrays(np.zeros((2, 4, 6, 3)), nchw), [*IMG, InputSpec("other", (1, 4, 6, 3))])
    assert "input 'other'" in str(e.value)
    with pytest.raises(CalibrationDataError) as e:
        collect(arrays(nchw), IMG)
    msg = str(e.value)
    assert "input 'image'" in msg and "expected shape (N, 4, 6, 3)" in msg and "got (2, 3, 4, 6)" in msg
    assert "layout mix-up" in msg
    with pytest.raises(CalibrationDataError, match=r"expected shape \(N, 4, 6, 3\).*got \(2, 4, 6\)$"):
        collect(arrays(np.zeros((2, 4, 6))), IMG)


def test_dynamic_dimensions_accept_any_size():
    spec = [InputSpec("tokens", (-1, None, 8))]
    out = collect(generator([np.zeros((2, 7, 8)), np.zeros((3, 11, 8))]), spec)
    assert [b[0].shape for b in out] == [(2, 7, 8), (3, 11, 8)]


def test_inputs_with_different_batch_sizes():
    with pytest.raises(CalibrationDataError, match=r"different batch sizes \{'ids': 2, 'mask': 3\}"):
        collect(generator([(np.zeros((2, 5)), np.zeros((3, 5)))]), TWO)


def test_dtypes_cast_or_fail_clearly():
    spec = [InputSpec("x", (1, 3))]
    assert collect(arrays(np.array([[1, 2, 3]], np.int64)), spec)[0][0].dtype == np.float32
    np.testing.assert_array_equal(collect(arrays(np.array([[1.5, 2, 3]])), spec)[0][0], [[1.5, 2, 3]])
    with pytest.raises(CalibrationDataError, match="input 'x': expected float32 data, got str"):
        collect(arrays(np.array([["a", "b", "c"]])), spec)
    with pytest.raises(CalibrationDataError, match="expected float32 data, got object"):
        collect(generator([np.array([[1, None, 3]], dtype=object)]), spec)
    ids = [InputSpec("ids", (1, 3), "int8")]
    assert collect(arrays(np.array([[1, -2, 127]], np.int64)), ids)[0][0].dtype == np.int8
    with pytest.raises(CalibrationDataError, match=r"values in \[1, 300\] do not fit int8"):
        collect(arrays(np.array([[1, 2, 300]], np.int64)), ids)
    with pytest.raises(CalibrationDataError, match="expected int8 data, got float64"):
        collect(arrays(np.array([[1.0, 2, 3]])), ids)


def test_non_finite_values_are_located():
    x = np.zeros((12, 2, 2), np.float32)
    x[9, 0, 0] = x[9, 1, 1] = np.nan  # batch 2 (size 4), sample 1 of the batch, sample 9 overall
    x[11, 0, 1] = -np.inf
    with pytest.raises(CalibrationDataError) as e:
        collect(arrays(x, batch_size=4), [InputSpec("image", (1, 2, 2))])
    assert str(e.value) == (
        "input 'image': 3 non-finite value(s) (2 NaN, 1 Inf) in calibration batch 2, sample 1 of the batch "
        "(sample 9 overall) and 1 more sample(s) of the batch"
    )


def test_good_batches_before_a_bad_one_are_still_yielded():
    x = np.zeros((8, 3), np.float32)
    x[5, 1] = np.inf
    it = validated(arrays(x, batch_size=4), [InputSpec("x", (1, 3))])
    assert next(it)[0].shape == (4, 3)
    with pytest.raises(
        CalibrationDataError, match=r"1 non-finite value.*batch 1, sample 1 .*sample 5 overall"
    ):
        next(it)


def test_empty_calibration_set():
    spec = [InputSpec("x", (1, 3))]
    for source in (arrays(np.zeros((0, 3))), generator([]), arrays(np.zeros((5, 3)), limit=0)):
        with pytest.raises(CalibrationDataError, match="calibration set is empty"):
            collect(source, spec)


# ----------------------------------------------------------------------------------------------- images


def _png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five 4x6 solid images whose sorted recursive order is a.png, b.PNG, c.png, sub/d.png, sub/e.png."""
    for i, name in enumerate(["c.png", "a.png", "b.PNG", "sub/e.png", "sub/d.png"]):
        _png(tmp_path / name, np.full((4, 6, 3), [10 * i, 100, 200]))
    _png(tmp_path / ".hidden.png", np.zeros((4, 6, 3)))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_images_nhwc_values_order_and_batches(folder: Path):
    source = images(folder, size=(4, 6), mean=[10, 50, 100], std=[2, 5, 10], batch_size=2)
    out = collect(source, IMG)
    assert [b[0].shape for b in out] == [(2, 4, 6, 3), (2, 4, 6, 3), (1, 4, 6, 3)]
    x = np.concatenate([b[0] for b in out])
    red = [10, 20, 0, 40, 30]  # a, b, c, sub/d, sub/e
    expected = (np.array([[r, 100, 200] for r in red], np.float32) - [10, 50, 100]) / [2, 5, 10]
    np.testing.assert_array_equal(x, np.broadcast_to(expected[:, None, None, :], x.shape))


def test_images_nchw_grayscale_limit_and_size_from_the_model(folder: Path):
    x = collect(images(folder, layout="NCHW", mean=127.5, std=127.5, limit=3), [InputSpec("i", (1, 3, 4, 6))])
    assert x[0][0].shape == (3, 3, 4, 6)
    np.testing.assert_array_equal(x[0][0][0, :, 0, 0], (np.float32([10, 100, 200]) - 127.5) / 127.5)
    gray = collect(images(folder, channels=1, std=255.0), [InputSpec("g", (1, 2, 3, 1))])[0][0]
    assert gray.shape == (5, 2, 3, 1)
    luma = np.asarray(Image.open(folder / "a.png").convert("L"), np.float32)[0, 0]
    np.testing.assert_array_equal(gray[0], np.full((2, 3, 1), luma / np.float32(255)))


def test_images_center_crop_keeps_the_middle(tmp_path: Path):
    _png(tmp_path / "wide.png", np.repeat(np.arange(8)[None, :, None] * 30, 4, axis=0).repeat(3, axis=2))
    spec = [InputSpec("i", (1, 4, 4, 3))]
    center = collect(images(tmp_path, resize="nearest"), spec)[0][0]
    np.testing.assert_array_equal(center[0, 0, :, 0], [60, 90, 120, 150])  # columns 2..5 of 0..7
    stretched = collect(images(tmp_path, resize="nearest", crop="none"), spec)[0][0]
    assert stretched[0, 0, 0, 0] <= 30 and stretched[0, 0, -1, 0] >= 180  # both ends of the row survive


def test_images_errors(folder: Path):
    with pytest.raises(CalibrationDataError, match="single-input models; this model has 2 inputs"):
        collect(images(folder, size=(4, 6)), TWO)
    (folder / "empty").mkdir()
    with pytest.raises(CalibrationDataError, match="no images"):
        collect(images(folder / "empty", size=(4, 6)), IMG)
    with pytest.raises(CalibrationDataError, match="mean needs 1 or 3 values"):
        images(folder, mean=[1, 2])
    with pytest.raises(CalibrationDataError, match=r"images give 1 .* or 3 .* channels; the input wants 4"):
        images(folder, channels=4)
    with pytest.raises(CalibrationDataError, match=r"pass size=\(height, width\)"):
        collect(images(folder), [InputSpec("x", (1, 10))])
    (folder / "sub" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(CalibrationDataError, match=r"cannot read calibration image .*sub/broken\.jpg"):
        collect(images(folder, size=(4, 6)), IMG)


# ------------------------------------------------------------------------------------------- from_path


def test_from_path_npy_is_memory_mapped_and_ignores_image_options(tmp_path: Path):
    x = np.random.default_rng(0).standard_normal((20, 4, 6, 3)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    source = from_path(tmp_path / "calib.npy", size=(4, 6), mean=127.5, std=127.5, layout="NHWC", limit=18)
    assert isinstance(next(source.batches(IMG))[0], np.memmap)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in collect(source, IMG)]), x[:18])


def test_from_path_npz_positional_named_compressed_and_fortran(tmp_path: Path):
    ids, mask = np.arange(35).reshape(7, 5), np.ones((7, 5))
    np.savez(tmp_path / "pos.npz", ids, mask)
    np.savez_compressed(tmp_path / "named.npz", mask=mask, ids=np.asfortranarray(ids))
    for name in ("pos.npz", "named.npz"):
        out = collect(from_path(tmp_path / name, batch_size=3), TWO)
        assert [b[0].shape[0] for b in out] == [3, 3, 1]
        np.testing.assert_array_equal(np.concatenate([b[0] for b in out]), ids)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in out]), mask)


def test_from_path_npz_streams_without_decompressing_whole_arrays(tmp_path: Path):
    x = np.zeros((2000, 64, 64), np.float32)  # 31 MiB once decompressed
    np.savez_compressed(tmp_path / "big.npz", x)
    tracemalloc.start()
    try:
        total = sum(
            b[0].shape[0] for b in validated(from_path(tmp_path / "big.npz"), [InputSpec("x", (1, 64, 64))])
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 2000
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_from_path_errors(tmp_path: Path, folder: Path):
    np.savez(tmp_path / "wrong.npz", a=np.zeros((2, 5)), b=np.zeros((2, 5)))
    with pytest.raises(
        CalibrationDataError, match=r"holds arrays \['a', 'b'\]; expected .*\['ids', 'mask'\]"
    ):
        collect(from_path(tmp_path / "wrong.npz"), TWO)
    (tmp_path / "fake.npz").write_bytes(b"not a zip")
    with pytest.raises(CalibrationDataError, match=r"cannot read calibration file .*fake\.npz"):
        from_path(tmp_path / "fake.npz")
    with pytest.raises(CalibrationDataError, match="does not exist"):
        from_path(tmp_path / "missing.npy")
    with pytest.raises(CalibrationDataError, match=r"expected a folder of images, a \.npy or an \.npz"):
        from_path(folder / "notes.txt")
    assert len(collect(from_path(folder, size=(4, 6), limit=4), IMG)[-1][0]) == 4
