"""Builds native/ (the C reference interpreter) into edgeq/_native, a plain shared library that
edgeq.native loads with ctypes. Everything else about the package is in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup

SOURCES = sorted(str(p) for pattern in ("native/src/*.c", "native/src/kernels/*.c") for p in Path().glob(pattern))

setup(
    ext_modules=[
        Extension(
            "edgeq._native",
            sources=SOURCES,
            include_dirs=["native/include", "native/src"],
            depends=sorted(str(p) for p in Path().glob("native/**/*.h")),
            extra_compile_args=["-std=c11", "-O3", "-Wall", "-Wextra"],
            libraries=["m"],
        )
    ]
)
