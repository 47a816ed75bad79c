"""The portable C kernels (no SSE2, no AVX2) must stay bit-exact too: the SIMD paths are only ever an
optimisation of them. Builds native/ with the x86 SIMD macros undefined and runs every native kernel test
against that build in a fresh process (the binding loads the library named by EDGEQ_NATIVE_LIB)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KERNEL_TESTS = ["core", "real_models", "matmul", "pool", "elementwise", "transcendental", "movement", "conv"]


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_portable_kernels_pass_every_native_test(tmp_path: Path) -> None:
    lib = tmp_path / "libedgeq_portable.so"
    env = {**os.environ, "EXTRA_CFLAGS": "-U__SSE2__ -DEDGEQ_NO_AVX2"}
    subprocess.run(["sh", str(REPO / "native" / "dev_build.sh"), str(lib)], env=env, check=True, capture_output=True)
    disassembly = subprocess.run(["objdump", "-d", str(lib)], capture_output=True, text=True).stdout
    if disassembly:
        assert "pmaddwd" not in disassembly, "the portable build still holds SIMD kernels"
    files = [str(REPO / "tests" / f"test_native_{name}.py") for name in KERNEL_TESTS]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files],
                         env={**os.environ, "EDGEQ_NATIVE_LIB": str(lib)}, cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
