"""Ranges for SOFTMAX inputs and the attention masks added to them.

A masked softmax adds a mask of 0 / -inf (or a large negative float, -1e9 .. -3.4e38) to its scores.
Calibrated as any other tensor, the mask breaks the integer model either way: -inf is left out of every
range, so a mask of only 0 and -inf gets the range [0, 0] and its -inf quantizes to 0 (no masking at all),
while a finite sentinel stretches the range until the scores have no resolution left. Both are repaired
from what a softmax is: exp(x - row max) < 1.3e-14 once x is 32/beta below its row's maximum, so
- the softmax input's range starts 32/beta below the smallest row maximum calibration saw (and ends at its
  largest value: the top logits are the ones that count): every value under that floor is zero after the
  softmax in float, and clipped to the floor it stays zero (a masked entry saturates there; the scores keep
  the resolution the sentinel took);
- a mask added to the scores (an ADD operand that is never positive and holds -inf, or values below what
  the floor needs) ranges down to that floor minus the other operand's planned span, so masked entries
  saturate at the floor whatever score they are added to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgeq.ir.graph import Graph
from edgeq.quant.op_rules import RULES

# exp(-32) = 1.3e-14: below the row maximum by this much (over beta), a softmax input counts for nothing.
SOFTMAX_FLOOR = 32.0


@dataclass
class SoftmaxInput:
    """A SOFTMAX input: the tensors from it back through encoding-preserving moves, and the ADD making them."""

    chain: list[int]
    depth: float  # 32 / beta
    add: tuple[int, int] | None  # the ADD's two operands, when an ADD computes the first tensor of the chain
    private: bool  # only the chain and the softmax read its tensors, none is a graph output


class Extremes:
    """Finite min and max of a tensor, whether it held -inf, and its smallest row maximum (last axis)."""

    def __init__(self) -> None:
        self.lo, self.hi, self.row_max_floor = math.inf, -math.inf, math.inf
        self.neg_inf = False

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if not x.size:
            return
        finite = np.isfinite(x)
        if not finite.all():
            self.neg_inf = self.neg_inf or bool(np.isneginf(x).any())
            values = x[finite]
        else:
            values = x
        if values.size:
            self.lo, self.hi = min(self.lo, float(values.min())), max(self.hi, float(values.max()))
        if x.ndim:
            rows = np.where(finite, x, -np.inf).reshape(-1, x.shape[-1]).max(axis=1)
            rows = rows[np.isfinite(rows)]
            if rows.size:
                self.row_max_floor = min(self.row_max_floor, float(rows.min()))


def softmax_inputs(graph: Graph) -> list[SoftmaxInput]:
    """Every SOFTMAX input, traced back through single-input ops that keep their input's encoding."""
    producers, consumers, outputs = graph.producers(), graph.consumers(), set(graph.outputs)
    found = []
    for op in graph.ops:
        if op.kind != "SOFTMAX":
            continue
        chain = [op.inputs[0]]
        while (i := producers.get(chain[-1])) is not None:
            rule = RULES.get(graph.ops[i].kind)
            if rule is None or rule.same_encoding != (0,) or len(rule.quantized_inputs) > 1:
                break
            chain.append(graph.ops[i].inputs[0])
        maker = graph.ops[i] if i is not None else None
        add = (maker.inputs[0], maker.inputs[1]) if maker is not None and maker.kind == "ADD" else None
        private = all(len(consumers.get(t, [])) == 1 and t not in outputs for t in chain)
        depth = SOFTMAX_FLOOR / float(op.options.get("beta", 1.0) or 1.0)
        found.append(SoftmaxInput(chain, depth, add, private))
    return found


def tensors_read(inputs: list[SoftmaxInput]) -> set[int]:
    """The tensors whose Extremes masked_softmax_ranges reads."""
    return {t for s in inputs for t in (*s.chain, *(s.add or ()))}


def masked_softmax_ranges(
    graph: Graph,
    ranges: Mapping[int, tuple[float, float]],
    inputs: list[SoftmaxInput],
    extremes: Mapping[int, Extremes],
    symmetric: bool,
) -> tuple[dict[int, tuple[float, float]], list[str]]:
    """`ranges` with the softmax inputs and their masks re-ranged as the module says, and a note for each.
    `symmetric`: the ranges are for a symmetric quantizer (int16), so the new ones are made symmetric too."""

    def fit(lo: float, hi: float) -> tuple[float, float]:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        a = max(-lo, hi)
        return (-a, a) if symmetric else (lo, hi)

    out = dict(ranges)
    notes: list[str] = []
    needs: dict[int, float] = {}  # mask -> the lowest value some softmax needs it to reach
    for s in inputs:
        t = s.chain[0]
        top = extremes.get(t)
        if t not in out or top is None or not math.isfinite(top.row_max_floor):
            continue
        new_lo = top.row_max_floor - s.depth
        masked = any(extremes[c].neg_inf for c in s.chain if c in extremes)
        if not masked and (top.lo >= new_lo or not s.private):  # clip only what nothing else reads
            continue
        for c in s.chain:
            if c in out:
                out[c] = fit(new_lo, top.hi)
        what = "-inf (a mask)" if masked else f"values down to {top.lo:.3g}"
        notes.append(f"softmax input '{graph.tensors[t].name}' held {what}: its range starts at {new_lo:.4g}, "
                     f"{s.depth:g} below the smallest row maximum {top.row_max_floor:.4g}, under which the "
                     f"softmax is 0")
        if s.add is None:
            continue
        a, b = s.add
        for x, y in ((a, b), (b, a)):
            if y not in out or x not in extremes:
                continue
            y_lo, y_hi = out[y]
            need = min(new_lo, 0.0) - y_hi - (y_hi - y_lo)  # masked entries saturate at the floor for any score
            mask = extremes[x]
            # A mask is never positive; where it is below `need`, the sum is under the floor either way.
            if mask.hi <= 0.0 and (mask.neg_inf or mask.lo < need):
                needs[x] = min(needs.get(x, 0.0), need)
    for x, need in needs.items():  # one mask is often added in every layer: the deepest need holds for all
        mask = extremes[x]
        out[x] = fit(need, mask.hi)
        notes.append(f"mask '{graph.tensors[x].name}' added to softmax inputs: range from {need:.4g} (it held "
                     f"{'-inf' if mask.neg_inf else f'values down to {mask.lo:.3g}'})")
    return out, notes
