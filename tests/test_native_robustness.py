"""The C interpreter against hostile and broken input: every failure is a clean edgeq_status, never a crash.

(a) the in-process mutation test (native/tests/mutate.c, ASan+UBSan) over real models; (b) a libFuzzer smoke
run when clang has libFuzzer; (c) every op model and TFLite Micro model through an ASan+UBSan edgeq-run, whose
outputs must equal the plain build's; (d) specific malformed files give specific errors through the binding.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import ModelFormatError, UnsupportedOpError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.verify.native import NativeModel

REPO = Path(__file__).resolve().parents[1]
NATIVE = REPO / "native"
SEEDS = NATIVE / "fuzz" / "seeds"
CRASHES = NATIVE / "fuzz" / "crashes"  # reproducers of crashes found so far: each must now run cleanly
SHARED_TFLM = REPO.parent / "shared" / "models" / "tflm"
ZOO = REPO / ".cache" / "zoo"

# edgeq-run exit codes: 10 + edgeq_status. UNSUPPORTED (valid model, op/type edgeq lacks) and RUNTIME (random
# inputs a kernel rejects at invoke, e.g. out-of-range gather indices) are clean; a sanitizer report is not.
CLEAN_EXITS = {0: "OK", 13: "ERROR_UNSUPPORTED", 15: "ERROR_RUNTIME"}
MAX_OUTPUTS = 16


def _make(*targets: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(["make", "-C", str(NATIVE), "-j2", *targets], capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        pytest.fail(f"make {' '.join(targets)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


@pytest.fixture(scope="module")
def sanitized() -> Path:
    """native/build-san: the ASan+UBSan library, edgeq-run and the mutation driver (gcc is enough)."""
    _make("mutate")
    return NATIVE / "build-san"


def _real_models() -> list[Path]:
    """A few real integer models: TFLite Micro's when ../shared is there, else the committed seeds."""
    models = [SHARED_TFLM / name for name in ("hello_world_int8.tflite", "micro_speech_quantized.tflite",
                                              "seanet/add/add0.tflite", "seanet/conv/conv0.tflite")]
    models = [p for p in models if p.exists()]
    return [*models, SEEDS / "cnn_int8_intio.tflite", SEEDS / "elementwise_a16w8.tflite"]


# ------------------------------------------------------------------------------------------ (a) mutation


def test_mutation_of_real_models(sanitized: Path, tmp_path: Path) -> None:
    models = _real_models()
    per_model = max(1000, 6000 // len(models))
    result = subprocess.run([str(sanitized / "mutate"), "--mutants", str(per_model), "--crash-dir", str(tmp_path),
                             *map(str, models)], capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"mutation test failed (reproducers in {tmp_path}):\n{report[-6000:]}"
    total = re.search(r"^total: (\d+) mutants; load:(.*)$", result.stdout, re.M)
    assert total, report
    assert int(total.group(1)) >= 5000, report
    assert "OK: 0 broken invariants" in result.stdout, report
    statuses = set(re.findall(r"(ERROR_\w+|OK) \d+", total.group(2)))
    assert statuses <= {"OK", "ERROR_MALFORMED", "ERROR_UNSUPPORTED", "ERROR_MEMORY"}, report
    assert "ERROR_MALFORMED" in statuses, report


def test_recorded_crashes_run_cleanly(sanitized: Path) -> None:
    files = sorted(CRASHES.glob("*.tflite"))
    if not files:
        pytest.skip("no recorded crashes in native/fuzz/crashes")
    result = subprocess.run([str(sanitized / "mutate"), "--replay", *map(str, files)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "OK: 0 broken invariants" in result.stdout, result.stdout


# ------------------------------------------------------------------------------------------ (b) libFuzzer


def test_libfuzzer_smoke(tmp_path: Path) -> None:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (`make setup` installs clang and libclang-rt-14-dev for libFuzzer)")
    probe = subprocess.run(["clang", "-print-file-name=libclang_rt.fuzzer-x86_64.a"], capture_output=True, text=True)
    runtime = Path(probe.stdout.strip())
    if not runtime.is_absolute() or not runtime.exists():
        probe = subprocess.run(["clang", "-print-runtime-dir"], capture_output=True, text=True)
        found = list(Path(probe.stdout.strip() or "/nonexistent").glob("libclang_rt.fuzzer*.a"))
        if not found:
            pytest.skip("clang has no libFuzzer runtime (install libclang-rt-14-dev)")
    _make("fuzz")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in sorted(SEEDS.glob("*.tflite")):
        shutil.copy(seed, corpus / seed.name)
    runs = 20000
    # libFuzzer's RSS limit reads getrusage's peak RSS, which Linux carries across fork and exec: a child of
    # this pytest process starts at pytest's own peak (2.3 GB late in the suite, after the zoo models), so
    # the fuzzer gets its usual 2 GB on top of that rather than in total.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    result = subprocess.run(
        [str(NATIVE / "build-fuzz" / "fuzz_load_invoke"), f"-runs={runs}", "-seed=1", "-max_len=16384",
         "-timeout=20", f"-rss_limit_mb={inherited_mb + 2048}", "-malloc_limit_mb=2048",
         f"-dict={NATIVE / 'fuzz' / 'tflite.dict'}", f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=600)
    log = result.stderr[-6000:]
    assert result.returncode == 0, f"libFuzzer found a crash (artifacts in {tmp_path}):\n{log}"
    assert f"Done {runs} runs" in result.stderr, log
    # the recorded reproducers, through the fuzz target's own input filling
    files = sorted(CRASHES.glob("*"))
    if files:
        replay = subprocess.run([str(NATIVE / "build-fuzz" / "fuzz_load_invoke"), *map(str, files)],
                                capture_output=True, text=True, timeout=300)
        assert replay.returncode == 0, replay.stderr[-6000:]


# ------------------------------------------------------------------------------------------ (c) sanitizer


def _op_model_paths() -> list[Path]:
    try:
        from tests.opmodels import op_models
    except ImportError:
        return []
    return [m.path for m in op_models()]


def _suite_models() -> list[Path]:
    models = _op_model_paths()
    if SHARED_TFLM.exists():
        models += sorted(SHARED_TFLM.rglob("*.tflite"))
    return models + sorted(SEEDS.glob("*.tflite"))


def _run(binary: Path, model: Path, seed: int, out_dir: Path) -> tuple[int, str, list[bytes]]:
    """edgeq-run on random inputs; odd seeds load with the SSE2 convolution kernels, even ones with AVX2."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outs = [out_dir / f"out{i}.bin" for i in range(MAX_OUTPUTS)]
    args = [str(binary), str(model), "--random", str(seed)]
    for out in outs:
        args += ["-o", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "EDGEQ_NO_AVX2"}
    if seed % 2:
        env["EDGEQ_NO_AVX2"] = "1"
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    return result.returncode, result.stderr[-3000:], [o.read_bytes() for o in outs if o.exists()]


def test_sanitized_run_of_every_model_matches_plain_build(sanitized: Path, tmp_path: Path) -> None:
    _make("all")
    plain = NATIVE / "build" / "edgeq-run"
    models = _suite_models()
    assert models, "no models to run"

    def check(job: tuple[int, Path]) -> str | None:
        k, model = job
        code, err, san_outputs = _run(sanitized / "edgeq-run", model, k, tmp_path / f"san{k}")
        if code not in CLEAN_EXITS:
            return f"{model.name}: sanitized edgeq-run exited {code}:\n{err}"
        plain_code, plain_err, plain_outputs = _run(plain, model, k, tmp_path / f"plain{k}")
        if plain_code != code:
            return f"{model.name}: plain build exited {plain_code}, sanitized {code}:\n{plain_err}\n{err}"
        if san_outputs != plain_outputs:
            return f"{model.name}: outputs of the sanitized and plain builds differ (seed {k})"
        return None

    workers = max(2, os.cpu_count() or 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        problems = [p for p in pool.map(check, enumerate(models)) if p]
    assert not problems, f"{len(problems)} of {len(models)} models:\n" + "\n".join(problems[:10])


# ------------------------------------------------------------------------------------------ (d) binding


def _q(scale: float = 0.05, zero_point: int = 3) -> Quantization:
    return Quantization(np.array([scale], np.float32), np.array([zero_point], np.int64))


def _model(kind: str = "RESHAPE", custom_code: str = "", dtype: str = "int8") -> bytes:
    """float [1, 8] -> QUANTIZE -> `kind` -> DEQUANTIZE -> float [2, 4]."""
    tensors = [Tensor("x", (1, 8), "float32"), Tensor("xq", (1, 8), dtype, quant=_q()),
               Tensor("yq", (2, 4), dtype, quant=_q()), Tensor("y", (2, 4), "float32")]
    middle = Op(kind, [1], [2], custom_code=custom_code)
    if kind == "RESHAPE":
        middle = Op(kind, [1], [2], options={"newShape": [2, 4]}, options_type="ReshapeOptions")
    ops = [Op("QUANTIZE", [0], [1]), middle, Op("DEQUANTIZE", [2], [3])]
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[3]))


def test_the_hand_built_model_runs() -> None:
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(1, 8)
    (y,) = NativeModel(_model()).run([x])
    np.testing.assert_allclose(y.reshape(-1), x.reshape(-1), atol=0.05 / 2 + 1e-6)


def test_truncated_files_are_format_errors() -> None:
    data = _model()
    for n in sorted(set(range(0, len(data), 13)) | {1, 7, 8, len(data) // 2, len(data) - 1}):
        with pytest.raises(ModelFormatError, match="rejected the model"):
            NativeModel(data[:n])


@pytest.mark.parametrize("garbage", [
    b"",
    b"\x00" * 64,
    b"this is a text file, not a model\n" * 20,
    bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)),
    b"\x10\x00\x00\x00TFL3" + b"\xff" * 200,
], ids=["empty", "zeros", "text", "random", "header-only"])
def test_garbage_is_a_format_error(garbage: bytes) -> None:
    with pytest.raises(ModelFormatError):
        NativeModel(garbage)


def test_wrong_file_identifier_is_named() -> None:
    data = bytearray(_model())
    data[4:8] = b"XYZ0"
    with pytest.raises(ModelFormatError, match="TFL3"):
        NativeModel(bytes(data))


@pytest.mark.parametrize("kind", ["SKIP_GRAM", "LSH_PROJECTION"])
def test_unsupported_builtin_names_the_op(kind: str) -> None:
    with pytest.raises(UnsupportedOpError, match=rf"op 1 is {kind}\b"):
        NativeModel(_model(kind))


def test_custom_op_names_its_code() -> None:
    with pytest.raises(UnsupportedOpError, match="custom op 'MyFancyOp'"):
        NativeModel(_model("CUSTOM", custom_code="MyFancyOp"))


def test_unsupported_tensor_type_is_named() -> None:
    with pytest.raises(UnsupportedOpError, match="FLOAT64"):
        NativeModel(_model(dtype="float64"))


def _zoo_float_model() -> Path | None:
    float_models = [p for p in ZOO.glob("*.tflite") if ".edgeq_" not in p.name] if ZOO.exists() else []
    return min(float_models, key=lambda p: p.stat().st_size) if float_models else None


@pytest.mark.skipif(_zoo_float_model() is None, reason="needs the zoo (.cache/zoo, `make zoo`)")
def test_float_zoo_model_runs_within_the_float_tolerance_of_the_reference() -> None:
    from edgeq.verify.bitexact import verify

    result = verify(_zoo_float_model(), samples=2)
    assert result.passed and result.float_tensors > 0, result.summary()


@pytest.mark.skipif(not (ZOO / "selfie_segmentation.tflite").exists(), reason="needs the zoo (`make zoo`)")
def test_float_zoo_model_with_a_custom_op_is_refused_naming_it() -> None:
    with pytest.raises(UnsupportedOpError, match=r"op \d+ .*custom op 'Convolution2DTransposeBias'"):
        NativeModel(ZOO / "selfie_segmentation.tflite")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
