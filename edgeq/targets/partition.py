"""From per-op support to delegated partitions, the way LiteRT's delegates partition a graph."""

from __future__ import annotations

from edgeq.ir.graph import Graph


def node_subsets(graph: Graph, supported: list[bool]) -> list[tuple[bool, list[int]]]:
    """Split the ops into alternating supported / unsupported subsets, each as large as the data
    dependencies allow: tflite/graph_info.cc PartitionGraphIntoIndependentNodeSubsets (greedy), which is
    how every delegate sees the graph before applying its own limits."""
    produced = {t for op in graph.ops for t in op.outputs}
    ready = {t for t in range(len(graph.tensors)) if t not in produced}
    done = [False] * len(graph.ops)
    subsets: list[tuple[bool, list[int]]] = []
    while not all(done):
        kind: bool | None = None
        nodes: list[int] = []
        progress = True
        while progress:
            progress = False
            for i, op in enumerate(graph.ops):
                if done[i] or any(t >= 0 and t not in ready for t in op.inputs):
                    continue
                if kind is None:
                    kind = supported[i]
                if supported[i] != kind:
                    continue
                done[i] = progress = True
                nodes.append(i)
                ready.update(op.outputs)
        if not nodes:  # a cycle or an input nothing produces: keep the remaining ops in order
            nodes = [i for i, d in enumerate(done) if not d]
            for i in nodes:
                done[i] = True
            kind = False
        subsets.append((bool(kind), nodes))
    return subsets
