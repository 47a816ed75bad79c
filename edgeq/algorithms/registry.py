"""The one place fidelity algorithms are registered: name, stage, where the code lives, what it does.

Entries name a module function ("module:function") imported on first use, so `import edgeq` never pays
for an algorithm's dependencies (torch for AdaRound). Adding an algorithm is one module plus one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgeq.errors import PlanError

# "float": changes float weights before calibration and must keep the float function (CLE, SmoothQuant).
# "plan": refines the chosen plan's rounding or biases after calibration (bias correction, AdaRound, GPTQ).
STAGES = ("float", "plan")


@dataclass(frozen=True)
class Algorithm:
    name: str
    stage: str
    entry: str  # "module:function"; the function takes an AlgorithmContext and returns notes (list[str])
    summary: str
    order: int  # position within its stage: e.g. AdaRound picks rounding before bias correction measures it

    def load(self) -> Callable:
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("gptq", "plan", "edgeq.algorithms.gptq:gptq", "second-order weight rounding (INT4, INT8)", 10),
        Algorithm("gptq_scales", "plan", "edgeq.algorithms.gptq_scales:run", "GPTQ + output-searched INT4 scales", 10),
        Algorithm(
            "depthwise_rounding", "plan", "edgeq.algorithms.depthwise_rounding:run", "exact depthwise rounding", 5
        ),
        Algorithm("cle", "float", "edgeq.algorithms.cle:run", "cross-layer equalization of weight ranges", 10),
        Algorithm("awq", "float", "edgeq.algorithms.awq:run", "activation-aware channel scaling (exact folds)", 15),
        Algorithm("smoothquant", "float", "edgeq.algorithms.smoothquant:run", "activation outliers into weights", 20),
        Algorithm("adaround", "plan", "edgeq.algorithms.adaround:run", "learned weight rounding, layer by layer", 20),
        Algorithm("block_reconstruction", "plan", "edgeq.algorithms.block_reconstruction:run", "block rounding", 25),
        Algorithm(
            "transformer_reconstruction",
            "plan",
            "edgeq.algorithms.transformer_reconstruction:run",
            "encoder-layer rounding, jointly",
            25,
        ),
        Algorithm("bias_correction", "plan", "edgeq.algorithms.bias_correction:run", "empirical bias correction", 30),
    )
}


def resolve(names: Sequence[str] | str | None) -> list[Algorithm]:
    """The requested algorithms in the order they run (by stage, then `order`); unknown names are
    a PlanError listing the known ones."""
    if not names:
        return []
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALGORITHMS]
    if unknown:
        known = ", ".join(sorted(ALGORITHMS)) or "none registered"
        raise PlanError(f"unknown algorithm(s) {', '.join(map(repr, unknown))}; known: {known}")
    chosen = {ALGORITHMS[n] for n in names}
    return sorted(chosen, key=lambda a: (STAGES.index(a.stage), a.order))
