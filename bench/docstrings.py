"""Real English sentences without a network: the first sentences of docstrings in CPython's standard library.

Deterministic: the modules are a fixed list of pure-Python files of the running interpreter's standard library
(3.11 here), read with `ast` (nothing is imported or executed). From each module, its public classes and
functions and the public methods of its public classes, in source order, the docstring's first sentence is
taken (up to the first ". " or blank line, whitespace collapsed), kept if it is 40 to 200 characters, has at
least 6 words and no doctest or reST markup; then deduplicated and sorted. A seeded permutation of that list
splits it into an evaluation set (the first EVAL_SIZE) and a disjoint calibration set (the rest).

More calibration text of the same shape ("extra", calibration only): the same first sentences from every other
pure-Python module of the standard library (test packages and site-packages left out), minus every sentence of
the two splits above, in a seeded order. The evaluation split does not depend on it.
"""

from __future__ import annotations

import ast
import functools
import re
import sysconfig
from pathlib import Path

import numpy as np

# Pure-Python modules with plenty of prose docstrings, relative to the standard library directory.
MODULES = (
    "argparse.py", "ast.py", "calendar.py", "collections/__init__.py", "configparser.py", "csv.py",
    "datetime.py", "difflib.py", "email/message.py", "fractions.py", "ftplib.py", "functools.py",
    "gettext.py", "heapq.py", "http/client.py", "imaplib.py", "inspect.py", "ipaddress.py",
    "logging/__init__.py", "mailbox.py", "nntplib.py", "pathlib.py", "pickle.py", "pydoc.py", "shutil.py",
    "smtplib.py", "statistics.py", "string.py", "subprocess.py", "tarfile.py", "tempfile.py",
    "textwrap.py", "threading.py", "typing.py", "unittest/case.py", "urllib/parse.py", "zipfile.py",
)  # fmt: skip
MIN_CHARS, MAX_CHARS, MIN_WORDS = 40, 200, 6
EVAL_SIZE = 300
_SPLIT_SEED = 0
_EXTRA_SEED = 1
# Directories of the standard library whose modules are not read for the extra calibration text.
_EXTRA_SKIPPED_DIRS = frozenset({"site-packages", "test", "tests", "idle_test"})
_MARKUP = re.compile(r">>>|::|`|\*\*|\$|\{|\}|%\(")


def _first_sentence(doc: str) -> str:
    paragraph = doc.strip().split("\n\n", 1)[0]
    text = " ".join(paragraph.split())
    end = text.find(". ")
    return text[: end + 1] if end >= 0 else text


def _keep(sentence: str) -> bool:
    sized = MIN_CHARS <= len(sentence) <= MAX_CHARS and len(sentence.split()) >= MIN_WORDS
    return sized and not _MARKUP.search(sentence)


def _docstrings(tree: ast.Module) -> list[str]:
    """Docstrings of public top-level classes and functions and of public methods of those classes."""
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("_"):
            continue
        found.append(ast.get_docstring(node))
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and not member.name.startswith("_"):
                    found.append(ast.get_docstring(member))
    return [d for d in found if d]


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _module_sentences(modules: list[str]) -> set[str]:
    kept = set()
    for module in modules:
        tree = ast.parse((_stdlib() / module).read_text(encoding="utf-8"))
        kept.update(s for s in map(_first_sentence, _docstrings(tree)) if _keep(s))
    return kept


@functools.cache
def all_sentences() -> tuple[str, ...]:
    """Every kept sentence of MODULES, deduplicated and sorted."""
    return tuple(sorted(_module_sentences(list(MODULES))))


def _extra_modules() -> list[str]:
    """Every other .py file of the standard library, sorted, outside test packages and site-packages."""
    stdlib = _stdlib()
    found = []
    for path in stdlib.rglob("*.py"):
        relative = path.relative_to(stdlib)
        skipped = any(d in _EXTRA_SKIPPED_DIRS or d.startswith("config-") for d in relative.parts[:-1])
        if not skipped and relative.as_posix() not in MODULES:
            found.append(relative.as_posix())
    return sorted(found)


@functools.cache
def extra_sentences() -> tuple[str, ...]:
    """Calibration-only sentences from the other modules, none of them in all_sentences(), in a seeded order."""
    pool = sorted(_module_sentences(_extra_modules()) - set(all_sentences()))
    order = np.random.default_rng(_EXTRA_SEED).permutation(len(pool))
    return tuple(pool[i] for i in order)


def sentences(split: str) -> list[str]:
    """The "eval" (EVAL_SIZE sentences) or "calib" (all the others) split, in a fixed order; "extra": the
    calibration-only sentences of the other modules."""
    if split == "extra":
        return list(extra_sentences())
    if split not in ("eval", "calib"):
        raise ValueError(f"split must be 'eval', 'calib' or 'extra', not {split!r}")
    pool = all_sentences()
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(pool))
    chosen = order[:EVAL_SIZE] if split == "eval" else order[EVAL_SIZE:]
    return [pool[i] for i in chosen]
