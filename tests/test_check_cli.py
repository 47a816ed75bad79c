"""`edgeq check` from the command line (text, --json, several targets, --report), and the report page in a
real headless browser (Debian's chromium): it loads without console errors and shows the delegation table
and the plots."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeq.cli import main
from edgeq.export.tflite_writer import write_tflite
from edgeq.targets import check
from edgeq.targets.report import write_report
from tests.test_targets_rules import G

CHROMIUM = shutil.which("chromium")


def _model(tmp_path: Path) -> Path:
    """int8 conv -> TRANSPOSE -> conv: Edge TPU cuts at the TRANSPOSE, the others map it."""
    g = G()
    x = g.act((1, 8, 8, 4))
    y = g.conv(x)
    t = g.act((1, 8, 8, 4))
    g.op("TRANSPOSE", [y, g.const([0, 2, 1, 3])], [t])
    g.conv(t)
    path = tmp_path / "m.tflite"
    path.write_bytes(write_tflite(g.graph()))
    return path


def test_check_prints_placements_rules_and_summary(tmp_path, capsys):
    assert main(["check", str(_model(tmp_path)), "--target", "edgetpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+1\s+TRANSPOSE\s+CPU$", out, re.M)
    assert ("<- edgetpu.ops: not in the Edge TPU's supported operations (TRANSPOSE is not listed) "
            "[source: coral.ai/docs/edgetpu/models-intro") in out
    assert "<- edgetpu.partition:" in out and "(after the cut at op 1 (TRANSPOSE))" in out
    assert "summary: 1/3 ops on Edge TPU in 1 partition(s)" in out


def test_check_json_one_target(tmp_path, capsys):
    assert main(["check", str(_model(tmp_path)), "--target", "edgetpu", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["target"] == "edgetpu"
    assert [(o["index"], o["op"], o["placement"]) for o in d["ops"]] == [
        (0, "CONV_2D", "accelerator"), (1, "TRANSPOSE", "cpu"), (2, "CONV_2D", "cpu")]
    assert d["ops"][0]["reasons"] == []
    assert [r.split(":")[0] for r in d["ops"][1]["reasons"]] == ["edgetpu.ops", "edgetpu.unsupported_ops"]
    s = d["summary"]
    assert (s["ops_total"], s["ops_on_accelerator"], s["partitions"]) == (3, 1, 1)
    assert s["macs_on_accelerator"] == 8 * 8 * 4 * 3 * 3 * 4 and s["cpu_share_macs"] == 0.5


def test_check_json_several_targets_is_a_list(tmp_path, capsys):
    specs = "edgetpu,nnapi:27,nnapi:29,nnapi,hexagon,hexagon:legacy,xnnpack,coreml-ane"
    assert main(["check", str(_model(tmp_path)), "--target", specs, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [r["target"] for r in d] == ["edgetpu", "nnapi:27", "nnapi:29", "nnapi:30", "hexagon:htp",
                                        "hexagon:legacy", "xnnpack", "coreml-ane"]
    on = {r["target"]: r["summary"]["ops_on_accelerator"] for r in d}
    # API 27: int8 convolutions are refused and TRANSPOSE needs 28, so nothing maps
    assert on == {"edgetpu": 1, "nnapi:27": 0, "nnapi:29": 3, "nnapi:30": 3, "hexagon:htp": 3,
                  "hexagon:legacy": 3, "xnnpack": 3, "coreml-ane": 3}


def test_check_errors_exit_2(tmp_path, capsys):
    model = str(_model(tmp_path))
    assert main(["check", model, "--target", "tpu"]) == 2
    assert "unknown target 'tpu'" in capsys.readouterr().err
    assert main(["check", model, "--target", "nnapi:26"]) == 2
    assert main(["check", str(tmp_path / "missing.tflite"), "--target", "edgetpu"]) == 2


def test_report_json_holds_the_same_facts(tmp_path, capsys):
    html = tmp_path / "dist" / "m" / "report.html"
    assert main(["check", str(_model(tmp_path)), "--target", "edgetpu,xnnpack", "--report", str(html)]) == 0
    data = json.loads(html.with_suffix(".json").read_text())
    assert [t["target"] for t in data["targets"]] == ["edgetpu", "xnnpack"]
    assert data["artifacts"] == {str(tmp_path / "m.tflite"): (tmp_path / "m.tflite").stat().st_size}
    page = html.read_text()
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert 'id="cut-strips"' in page and "id='delegation'" in page and "sqnr-plot" not in page


def _chromium(args: list[str], url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0", *args, url],
        capture_output=True, text=True, timeout=120,
    )


def _console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it)")
def test_report_in_headless_chromium(tmp_path):
    results = [check(_model(tmp_path), spec, name="m.tflite") for spec in ("edgetpu", "nnapi:27", "xnnpack")]
    sqnr = [("t2", 38.5), ("t5", float("inf")), ("t7", 12.0)]
    html, data = write_report(tmp_path / "report.html", results, layer_sqnr=sqnr)
    assert json.loads(data.read_text())["layer_sqnr"][1] == {"tensor": "t5", "sqnr_db": None}

    # The console check sees errors: a page that logs one is caught.
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('edgeq-probe')</script></body></html>")
    assert any("edgeq-probe" in m for m in _console_messages(_chromium(["--dump-dom"], broken.as_uri()).stderr))

    run = _chromium(["--dump-dom"], html.as_uri())
    assert run.returncode == 0
    assert _console_messages(run.stderr) == []
    dom = run.stdout
    rows = re.findall(r"<tr><td>(edgetpu|nnapi:27|xnnpack)</td>", dom)
    assert rows == ["edgetpu", "nnapi:27", "xnnpack"]  # the delegation table, one row per target
    strips = dom[dom.index('id="cut-strips"'):]
    strips = strips[: strips.index("</svg>")]
    assert strips.count('class="op accelerator"') == 1 + 0 + 3 and strips.count('class="op cpu"') == 2 + 3 + 0
    assert dom.count('class="sqnr"') == 3 and 'id="mac-bars"' in dom

    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,1400", "--hide-scrollbars"], html.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in np.unique(pixels, axis=0)}
    assert (0x2E, 0x9D, 0x5B) in colours and (0xE0, 0x7B, 0x39) in colours  # accelerator and CPU cells drawn
