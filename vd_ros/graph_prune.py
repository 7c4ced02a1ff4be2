"""The sub-graph of a contract model that computes only some of its outputs.

ONNX Runtime runs every node of a session's graph whatever outputs a call asks for: the shipped
model costs the same CPU for ``features`` alone as for all five outputs. A session over the
sub-graph that feeds the wanted outputs skips the rest (the segmentation head when nobody reads
the segmentation, the uncertainty branch when nobody reads the confidence). The sub-graph keeps
the nodes in their order (ONNX graphs are topologically sorted), both graph inputs, the
metadata and only the initializers its nodes read; its outputs equal the full graph's.
"""

from typing import Callable, Iterable, Set

import onnx


def node_reads(node: onnx.NodeProto) -> Set[str]:
    """Return the value names a node reads, those of its sub-graphs (If, Loop, Scan) included."""
    names = {name for name in node.input if name}
    for attribute in node.attribute:
        graphs = list(attribute.graphs) + ([attribute.g] if attribute.HasField('g') else [])
        for graph in graphs:
            for inner in graph.node:
                names |= node_reads(inner)
    return names


def prune_outputs(model: onnx.ModelProto, outputs: Iterable[str]) -> onnx.ModelProto:
    """Return a copy of ``model`` whose graph computes only ``outputs``.

    Args:
        model: A loaded ONNX model.
        outputs: Names of graph outputs to keep.

    Raises:
        ValueError: A name that is not an output of the graph.
    """
    wanted = list(outputs)
    graph = model.graph
    unknown = sorted(set(wanted) - {value.name for value in graph.output})
    if unknown:
        raise ValueError(f'{unknown} are not outputs of the graph '
                         f'({[value.name for value in graph.output]})')
    kept = [graph.node[index] for index in sorted(ancestors(graph, wanted))]
    return graph_of(model, kept, wanted, list(graph.input))


def ancestors(graph: onnx.GraphProto, outputs: Iterable[str],
              allowed: Callable[[int], bool] = None) -> Set[int]:
    """Return the indices of the nodes that ``outputs`` depend on.

    Args:
        graph: A topologically sorted graph (as ONNX graphs are).
        outputs: Value names to start from.
        allowed: Whether the walk may take the node of this index and go on through its
            inputs; None takes every node.
    """
    needed, indices = set(outputs), set()
    for index in reversed(range(len(graph.node))):  # consumers come after producers
        node = graph.node[index]
        if needed.intersection(node.output) and (allowed is None or allowed(index)):
            indices.add(index)
            needed |= node_reads(node)
    return indices


def graph_of(model: onnx.ModelProto, nodes: list, outputs: Iterable[str],
             inputs: list) -> onnx.ModelProto:
    """Return a copy of ``model`` whose graph runs ``nodes`` (in order) from ``inputs``.

    Args:
        model: The model whose metadata, opsets, outputs and initializers are taken.
        nodes: Its nodes to keep, in topological order.
        outputs: Names of the graph outputs to keep.
        inputs: ValueInfoProto of the graph inputs.

    Returns:
        The model with only the initializers ``nodes`` read and the value_info of what they
        compute.
    """
    graph, wanted = model.graph, set(outputs)
    reads = set().union(*(node_reads(node) for node in nodes)) | wanted
    produced = {name for node in nodes for name in node.output}
    part = onnx.ModelProto()
    part.CopyFrom(model)
    del part.graph.node[:]
    part.graph.node.extend(nodes)
    del part.graph.input[:]
    part.graph.input.extend(inputs)
    del part.graph.output[:]
    part.graph.output.extend(value for value in graph.output if value.name in wanted)
    del part.graph.initializer[:]
    part.graph.initializer.extend(value for value in graph.initializer if value.name in reads)
    del part.graph.value_info[:]
    part.graph.value_info.extend(value for value in graph.value_info if value.name in produced)
    return part
