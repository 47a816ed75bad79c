"""The delegation report: one self-contained HTML page (inline SVG and CSS, no scripts, nothing fetched)
and the same facts as JSON. It shows, per target, where the graph is cut, the table of placements with the
rule behind every CPU op, artifact sizes, and per-layer SQNR when the converter passes it in."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

from edgeq.export.atomic import write_atomic
from edgeq.targets.check import ACCELERATOR, CheckResult

_COLOURS = {ACCELERATOR: "#2e9d5b", "cpu": "#e07b39"}
_STRIP_W, _ROW_H, _LABEL_W = 900, 26, 150


def write_report(
    path: Path,
    results: Sequence[CheckResult],
    layer_sqnr: Sequence[tuple[str, float]] | None = None,
    artifacts: dict[str, int] | None = None,
) -> tuple[Path, Path]:
    """Write `path` (HTML) and the same facts as JSON next to it (same name, .json). `layer_sqnr` is the hook
    for the converter's per-layer fidelity: (tensor name, SQNR in dB) pairs, drawn in op order.
    `artifacts` maps artifact names to sizes in bytes (default: the checked model's own size)."""
    data = report_data(results, layer_sqnr, artifacts)
    json_path = path.with_suffix(".json")
    write_atomic(path, render_html(data).encode())
    write_atomic(json_path, (json.dumps(data, indent=1) + "\n").encode())
    return path, json_path


def report_data(
    results: Sequence[CheckResult],
    layer_sqnr: Sequence[tuple[str, float]] | None = None,
    artifacts: dict[str, int] | None = None,
) -> dict:
    """Everything the page shows, as plain data (what report.json holds)."""
    first = results[0]
    if artifacts is None:
        artifacts = {first.model: first.size_bytes} if first.size_bytes is not None else {}
    return {
        "model": first.model,
        "artifacts": artifacts,
        # JSON has no infinity: an exact tensor (no noise) is null
        "layer_sqnr": [{"tensor": t, "sqnr_db": float(db) if math.isfinite(db) else None}
                       for t, db in (layer_sqnr or [])],
        "targets": [r.to_dict() for r in results],
    }


def render_html(data: dict) -> str:
    targets = data["targets"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>edgeq delegation report: {escape(data['model'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Delegation report: {escape(data['model'])}</h1>",
        _artifacts(data["artifacts"]),
        _summary_table(targets),
        "<h2>Where each target cuts the graph</h2>",
        '<p class="legend"><span class="sw acc"></span> accelerator <span class="sw cpu"></span> CPU '
        "(the op sequence in execution order; each cell is one op, hover for the rule)</p>",
        _strips(targets),
        "<h2>Share of MACs per target</h2>",
        _mac_bars(targets),
    ]
    if data["layer_sqnr"]:
        parts += ["<h2>Per-layer SQNR</h2>", "<p class='legend'>SQNR (dB) of each quantized tensor against its float "
                  "twin, in op order; hover a bar for the tensor</p>",
                  _sqnr_plot(data["layer_sqnr"], targets[0]["ops"])]
    parts += ["<h2>Placement of every op</h2>", _op_tables(targets)]
    parts += ["<h2>Why ops leave the accelerator</h2>", *(_reasons(t) for t in targets)]
    parts.append("</body></html>")
    return "\n".join(parts)


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.acc{background:#d6f0df}td.cpu{background:#fbe0cf}
.legend{font-size:13px}.sw{display:inline-block;width:12px;height:12px;vertical-align:middle}
.sw.acc{background:#2e9d5b}.sw.cpu{background:#e07b39}
.reasons li{font-size:13px;margin:2px 0}.src{color:#666}
.note{font-size:13px;color:#555}
"""


def _artifacts(artifacts: dict[str, int]) -> str:
    rows = "".join(f"<tr><td>{escape(k)}</td><td class='num'>{v:,}</td><td class='num'>{v / 1024:.1f}</td></tr>"
                   for k, v in artifacts.items())
    return f"<h2>Artifacts</h2><table id='artifacts'><tr><th>artifact</th><th>bytes</th><th>KiB</th></tr>{rows}</table>"


def _summary_table(targets: list[dict]) -> str:
    rows = []
    for t in targets:
        s = t["summary"]
        first = "-" if s["first_cpu_op"] is None else str(s["first_cpu_op"])
        rows.append(
            f"<tr><td>{escape(t['target'])}</td><td>{escape(s['title'])}</td>"
            f"<td class='num'>{s['ops_on_accelerator']} / {s['ops_total']}</td><td class='num'>{s['partitions']}</td>"
            f"<td class='num'>{100 * (1 - s['cpu_share_macs']):.1f}%</td>"
            f"<td class='num'>{100 * s['cpu_share_ops']:.1f}%</td><td class='num'>{first}</td>"
            f"<td>{'device decides' if s['device_only'] else 'static rules'}</td></tr>"
        )
    return (
        "<h2>Delegation per target</h2><table id='delegation'><tr><th>target</th><th>accelerator</th>"
        "<th>ops on accelerator</th><th>partitions</th><th>MACs on accelerator</th><th>ops on CPU</th>"
        "<th>first CPU op</th><th>certainty</th></tr>" + "".join(rows) + "</table>"
    )


def _tip(op: dict) -> str:
    why = "; ".join(op["reasons"]) if op["reasons"] else "maps"
    return escape(f"op {op['index']} {op['op']} -> {op['output']}: {op['placement']}. {why}")


def _strips(targets: list[dict]) -> str:
    n = max(len(t["ops"]) for t in targets)
    cell = _STRIP_W / max(n, 1)
    height = _ROW_H * len(targets) + 24
    out = [f'<svg id="cut-strips" xmlns="http://www.w3.org/2000/svg" width="{_LABEL_W + _STRIP_W + 10}" '
           f'height="{height}" role="img" aria-label="placement of each op per target">']
    for row, t in enumerate(targets):
        y = row * _ROW_H
        out.append(f'<text x="0" y="{y + 17}" font-size="13">{escape(t["target"])}</text>')
        for op in t["ops"]:
            x = _LABEL_W + op["index"] * cell
            out.append(f'<rect class="op {op["placement"]}" x="{x:.2f}" y="{y + 3}" width="{max(cell - 0.5, 0.5):.2f}" '
                       f'height="{_ROW_H - 8}" fill="{_COLOURS[op["placement"]]}"><title>{_tip(op)}</title></rect>')
        for k, part in enumerate(t["partitions"][1:], start=1):  # boundaries between delegated partitions
            x = _LABEL_W + part[0] * cell
            out.append(f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{y}" y2="{y + _ROW_H - 2}" stroke="#111" '
                       f'stroke-width="1.5"><title>partition {k + 1} starts at op {part[0]}</title></line>')
    for i in range(0, n, max(1, n // 10)):
        out.append(f'<text x="{_LABEL_W + i * cell:.1f}" y="{height - 6}" font-size="10" fill="#555">{i}</text>')
    out.append("</svg>")
    return "".join(out)


def _mac_bars(targets: list[dict]) -> str:
    out = [f'<svg id="mac-bars" xmlns="http://www.w3.org/2000/svg" width="{_LABEL_W + _STRIP_W + 10}" '
           f'height="{_ROW_H * len(targets)}" role="img" aria-label="share of MACs on the accelerator">']
    for row, t in enumerate(targets):
        s = t["summary"]
        y = row * _ROW_H
        share = 1 - s["cpu_share_macs"] if s["macs_total"] else 0.0
        w = _STRIP_W * share
        out.append(f'<text x="0" y="{y + 17}" font-size="13">{escape(t["target"])}</text>')
        out.append(f'<rect x="{_LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{_ROW_H - 8}" '
                   f'fill="{_COLOURS[ACCELERATOR]}"><title>{s["macs_on_accelerator"]:,} MACs on the accelerator'
                   "</title></rect>")
        out.append(f'<rect x="{_LABEL_W + w:.1f}" y="{y + 3}" width="{_STRIP_W - w:.1f}" height="{_ROW_H - 8}" '
                   f'fill="{_COLOURS["cpu"]}"><title>{s["macs_total"] - s["macs_on_accelerator"]:,} MACs on the CPU'
                   f'</title></rect>')
        out.append(f'<text x="{_LABEL_W + 6}" y="{y + 17}" font-size="12" fill="#fff">{100 * share:.1f}%</text>')
    out.append("</svg>")
    return "".join(out)


def _sqnr_plot(sqnr: list[dict], ops: list[dict]) -> str:
    """SQNR per tensor as bars, in op order where the tensor is an op output (else in the order given)."""
    order = {op["output"]: op["index"] for op in ops}
    points = sorted(sqnr, key=lambda p: order.get(p["tensor"], len(ops)))
    top = max([p["sqnr_db"] for p in points if p["sqnr_db"] is not None] + [1.0])
    h, w = 180, _STRIP_W / max(len(points), 1)
    out = [f'<svg id="sqnr-plot" xmlns="http://www.w3.org/2000/svg" width="{_LABEL_W + _STRIP_W + 10}" '
           f'height="{h + 20}" role="img" aria-label="per-layer SQNR in dB">',
           f'<text x="0" y="14" font-size="12">{top:.0f} dB</text><text x="0" y="{h}" font-size="12">0 dB</text>']
    for k, p in enumerate(points):
        db = p["sqnr_db"]
        bh = (h - 10) if db is None else max(db, 0.0) / top * (h - 10)
        label = "exact (no noise)" if db is None else f"{db:.2f} dB"
        out.append(f'<rect class="sqnr" x="{_LABEL_W + k * w:.2f}" y="{h - bh:.1f}" width="{max(w - 1, 0.5):.2f}" '
                   f'height="{bh:.1f}" fill="#4a6fb5"><title>{escape(p["tensor"])}: {label}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def _op_tables(targets: list[dict]) -> str:
    """One table per distinct graph: targets adapted by conversion (integer I/O, say) have artifacts of their own,
    whose ops differ from the plain model's."""
    groups: dict[tuple, list[dict]] = {}
    for t in targets:
        groups.setdefault(tuple((o["op"], o["output"]) for o in t["ops"]), []).append(t)
    if len(groups) == 1:
        return _op_table(targets)
    return "".join(f"<p class='note'>{escape(', '.join(t['target'] for t in group))}</p>{_op_table(group, f'ops-{k}')}"
                   for k, group in enumerate(groups.values()))


def _op_table(targets: list[dict], ident: str = "ops") -> str:
    head = "".join(f"<th>{escape(t['target'])}</th>" for t in targets)
    rows = []
    for i, op in enumerate(targets[0]["ops"]):
        cells = []
        for t in targets:
            o = t["ops"][i]
            cls = "acc" if o["placement"] == ACCELERATOR else "cpu"
            cells.append(f"<td class='{cls}' title='{escape('; '.join(o['reasons']))}'>{o['placement']}</td>")
        rows.append(f"<tr><td class='num'>{op['index']}</td><td>{escape(op['op'])}</td><td>{escape(op['output'])}"
                    f"</td><td class='num'>{op['macs']:,}</td>{''.join(cells)}</tr>")
    return (f"<table id='{ident}'><tr><th>#</th><th>op</th><th>output</th><th>MACs</th>{head}</tr>"
            + "".join(rows) + "</table>")


def _reasons(t: dict) -> str:
    items = []
    for o in t["ops"]:
        for r in o["reasons"]:
            items.append(f"<li>op {o['index']} {escape(o['op'])}: {escape(r)}</li>")
    notes = sorted({n for o in t["ops"] for n in o["notes"]})
    body = "".join(items) or "<li>every op maps</li>"
    note = "".join(f"<p class='note'>note: {escape(n)}</p>" for n in notes[:5])
    device = "<p class='note'>Only a device knows the real placement.</p>" if t["summary"]["device_only"] else ""
    return f"<h3>{escape(t['target'])}</h3><ul class='reasons'>{body}</ul>{note}{device}"
