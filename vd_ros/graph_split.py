"""A contract model's graph cut in two parts, so that two threads can run it.

The completion head reads only the graph inputs and two tensors of the rest of the model (the
decoder's relative depth and the last fused token map), and nothing else reads the head. Cut
there, the *early* part (encoder, decoder, segmentation head: every output but the head's) runs
in the node's first stage and the *late* part (the head) in its second stage, beside the
post-processing, while the first stage already runs the early part of the next frame: on two
cores each stage then has about one core's work (README "Performance"). The parts compute
exactly what the whole graph computes: the late part runs the same nodes on the same values.
"""

from typing import Iterable, List, Set, Tuple

import onnx

from vd_ros.graph_prune import ancestors, graph_of, node_reads, prune_outputs

# The completion head's outputs: what the late part computes.
LATE_OUTPUTS = ('completed_depth', 'depth_uncertainty')


def _constant_nodes(graph: onnx.GraphProto) -> Set[int]:
    """Return the indices of the nodes whose inputs are all constants (or computed from them)."""
    constants = {value.name for value in graph.initializer}
    indices = set()
    for index, node in enumerate(graph.node):
        if node_reads(node) <= constants:
            indices.add(index)
            constants.update(node.output)
    return indices


def split_outputs(model: onnx.ModelProto, outputs: Iterable[str]) -> Tuple[
        onnx.ModelProto, onnx.ModelProto, List[str]]:
    """Cut the sub-graph that computes ``outputs`` before the completion head.

    Args:
        model: A loaded ONNX model.
        outputs: Graph outputs wanted, at least one of ``LATE_OUTPUTS``.

    Returns:
        ``(early, late, cut)``: ``early`` computes the wanted outputs that are not the head's
        and the ``cut`` tensors; ``late`` reads the graph inputs it needs and the cut tensors
        (as graph inputs of the same names) and computes the wanted head outputs.

    Raises:
        ValueError: No head output is wanted, an unknown output, or the head shares nodes
            with the rest of the graph (no cut exists).
    """
    wanted = list(outputs)
    graph = model.graph
    late_wanted = [name for name in wanted if name in LATE_OUTPUTS]
    if not late_wanted:
        raise ValueError(f'none of {list(LATE_OUTPUTS)} among {wanted}: nothing to split')
    others = [value.name for value in graph.output if value.name not in LATE_OUTPUTS]
    rest = ancestors(graph, others)
    # The late part: the head's own nodes back to the cut. A node computed from constants
    # alone (a float16-stored weight cast to float32) that both parts read, each computes.
    constant = _constant_nodes(graph)
    late_indices = ancestors(graph, late_wanted,
                             lambda index: index not in rest or index in constant)
    late_nodes = [graph.node[index] for index in sorted(late_indices)]
    if not late_nodes:  # the head's outputs are computed by the rest of the graph
        raise ValueError(f'{late_wanted} have no nodes of their own: no cut')
    produced_late = {name for node in late_nodes for name in node.output}
    reads = set().union(*(node_reads(node) for node in late_nodes))
    constants = {value.name for value in graph.initializer}
    inputs = {value.name for value in graph.input}
    cut = sorted(reads - produced_late - constants - inputs)
    typed = _cut_types(model, cut)
    early = onnx.ModelProto()
    early.CopyFrom(model)
    present = {value.name for value in graph.output}
    early.graph.output.extend(typed[name] for name in cut if name not in present)
    early = prune_outputs(early, [name for name in wanted if name not in LATE_OUTPUTS] + cut)
    late_inputs = [value for value in graph.input if value.name in reads]
    late = graph_of(model, late_nodes, late_wanted, late_inputs + [typed[name] for name in cut])
    return early, late, cut


def _cut_types(model: onnx.ModelProto, cut: List[str]) -> dict:
    """Return name -> ValueInfoProto (type and shape) of every cut tensor.

    Raises:
        ValueError: ONNX shape inference gives no type for a cut tensor.
    """
    graph = model.graph
    known = {value.name: value for value in [*graph.value_info, *graph.output]}
    if any(name not in known for name in cut):
        inferred = onnx.shape_inference.infer_shapes(model).graph
        known.update((value.name, value) for value in inferred.value_info)
    missing = [name for name in cut if name not in known]
    if missing:
        raise ValueError(f'no inferred type for the cut tensors {missing}')
    return {name: known[name] for name in cut}
