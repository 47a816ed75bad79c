"""coremltools, imported once and quietly: on Linux it logs that it cannot load Core ML itself (expected: edgeq
only writes and reads packages here) and warns about untested framework versions it never uses for edgeq."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator

for _name in ("coremltools", "torchao"):  # torchao: imported by coremltools' torch frontend
    logging.getLogger(_name).setLevel(logging.ERROR)

import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import Function, Program, types  # noqa: E402
from coremltools.converters.mil.mil.passes import pass_pipeline as _pass_pipeline  # noqa: E402


@contextlib.contextmanager
def no_pass_progress() -> Iterator[None]:
    """coremltools draws a progress bar per pass pipeline, even an empty one; edgeq reports its own progress."""
    original = _pass_pipeline.tqdm
    _pass_pipeline.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        _pass_pipeline.tqdm = original


__all__ = ["Function", "Program", "ct", "mb", "no_pass_progress", "types"]
