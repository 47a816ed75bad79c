"""`edgeq check` on the zoo's real models: EfficientNet-Lite0 and the MediaPipe models, quantized int8 by
edgeq (32 photo calibration samples, cached in the zoo as <name>.edgeq_int8.tflite), on every target profile.
Writes docs/targets/<model>.<target>.txt and dist/<model>/report.html (+ report.json), the report with the
per-layer SQNR of the int8 model against float on 8 held-out samples.

    PYTHONPATH=. .venv/bin/python bench/check_zoo.py [model ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench import zoo
from edgeq.targets import check
from edgeq.targets.report import write_report

MODELS = ("efficientnet_lite0", "face_detection_short_range", "hand_landmark_lite", "selfie_segmentation",
          "face_landmark")
TARGETS = ("edgetpu", "nnapi", "nnapi:29", "nnapi:27", "hexagon", "hexagon:legacy", "xnnpack", "coreml-ane")
CALIB = 32
REPO = Path(__file__).resolve().parents[1]


def quantized(name: str) -> Path:
    """The int8 model, built once into the zoo cache."""
    import edgeq

    def build(tmp: Path) -> None:
        entry = zoo.get(name)
        model = edgeq.load(entry.path(), name=name)
        calib = edgeq.calibration.arrays(*entry.calib(CALIB, 0))
        tmp.write_bytes(edgeq.quantize(model, calib, scheme="int8", progress=False).tflite)

    return zoo._cached(f"{name}.edgeq_int8.tflite", build)


def main(names: list[str]) -> None:
    out = REPO / "docs" / "targets"
    out.mkdir(parents=True, exist_ok=True)
    for name in names or MODELS:
        path = quantized(name)
        results = [check(path, spec, name=f"{name}.int8.tflite") for spec in TARGETS]
        for r in results:
            (out / f"{name}.{r.target.spec.replace(':', '_')}.txt").write_text(r.text() + "\n")
            s = r.summary
            print(f"{name:28s} {r.target.spec:15s} {s['ops_on_accelerator']:>4}/{s['ops_total']:<4} ops, "
                  f"{s['partitions']} partition(s), {100 * (1 - s['cpu_share_macs']):5.1f}% of MACs on the accelerator")
        artifacts = {f"{name}.float32.tflite": zoo.get(name).path().stat().st_size,
                     f"{name}.int8.tflite": path.stat().st_size}
        write_report(REPO / "dist" / name / "report.html", results, layer_sqnr=layer_sqnr(name, path),
                     artifacts=artifacts)


def layer_sqnr(name: str, quantized_path: Path) -> list[tuple[str, float]]:
    """SQNR of every int8 tensor against its float twin (matched by name), in the order compare ranks them."""
    import edgeq
    from edgeq.verify.fidelity import compare

    entry = zoo.get(name)
    model = edgeq.load(entry.path(), name=name)
    report = compare(model.graph, model.host_tflite, quantized_path.read_bytes(),
                     edgeq.calibration.arrays(*entry.eval(8, 0)), layers=1 << 20)
    return [(layer.tensor, layer.sqnr_db) for layer in report.worst_layers]


if __name__ == "__main__":
    main(sys.argv[1:])
