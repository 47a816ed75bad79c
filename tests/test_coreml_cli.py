"""The shell and the example script a user copies: both targets from one plan, from a folder of photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import edgeq
from bench import zoo
from bench.photos import photo_crops

REPO = Path(__file__).resolve().parents[1]


def _photos(folder: Path, n: int, size: int) -> Path:
    folder.mkdir()
    for k, crop in enumerate(photo_crops("calib", n, size)):
        Image.fromarray(np.asarray(crop, dtype=np.uint8)).save(folder / f"{k:03d}.png")
    return folder


def test_convert_targets_tflite_and_coreml_from_photos(tmp_path):
    model = zoo.get("keras_segmenter").path()
    photos = _photos(tmp_path / "photos", 12, 48)
    out = tmp_path / "dist"
    run = subprocess.run(
        [sys.executable, "-m", "edgeq.cli", "convert", str(model), "--calib", str(photos), "--mean", "0", "--std",
         "255", "--targets", "tflite,coreml", "-o", str(out), "--json", "--quiet"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(run.stdout)
    package = Path(summary["artifacts"]["coreml"])
    assert package.name == "keras_segmenter.int8.w8a8.mlpackage" and package.is_dir()
    assert Path(summary["artifacts"]["tflite"]).is_file()
    from edgeq.verify.mil_eval import MILProgram

    prog = MILProgram.load(package)
    ((_, shape, _),) = prog.inputs
    assert shape == (1, 3, 48, 48)  # an image input: pixels, channel first, normalised inside the program
    plan = edgeq.QuantPlan.load(summary["artifacts"]["plan"])
    assert prog.metadata["com.github.edgeq.scheme"] == plan.scheme
    bad = subprocess.run(
        [sys.executable, "-m", "edgeq.cli", "convert", str(model), "--calib", str(photos), "--targets", "coreml",
         "--coreml-mode", "w4", "-o", str(tmp_path / "bad"), "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "INT4 weights" in bad.stderr
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").glob("*.mlpackage"))


def test_example_script_writes_and_verifies_both(tmp_path):
    model = zoo.get("face_detection_short_range").path()
    photos = _photos(tmp_path / "photos", 10, 128)
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quantize_tflite.py"), str(model), str(photos), "-o",
         str(tmp_path / "dist")],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    assert "decode exactly to the plan" in run.stdout
    assert (tmp_path / "dist" / "face_detection_short_range.mlpackage").is_dir()
    assert (tmp_path / "dist" / "face_detection_short_range.int8.tflite").is_file()
