"""A contract model's graph cut before its heads, so that two threads can run it.

The completion head reads only the graph inputs and two tensors of the rest of the model (the
decoder's relative depth and the last fused token map), and nothing else reads the head; the
descriptor head reads the graph's RGB input and the fused token maps. Cut there, the *early*
part (encoder, decoder, segmentation head: every output but the heads') runs in the node's
first stage and each *late* part (a head) in its second stage, beside the post-processing,
while the first stage already runs the early part of the next frame: on two cores each stage
then has about one core's work (README "Performance"). The second stage runs the completion
head, publishes the depth and the early outputs, and only then runs the descriptor head, so
the descriptors never delay the depth (node parameter ``split_descriptor_head: false`` keeps
the descriptor head in the early part). The parts compute exactly what the whole graph
computes: a late part runs the same nodes on the same values.
"""

import logging
from typing import Iterable, List, Set, Tuple

import onnx

from vd_ros.graph_prune import ancestors, graph_of, node_reads, prune_outputs

_logger = logging.getLogger(__name__)

# The heads' outputs, one tuple per late part, in the order the second stage runs them.
COMPLETION_HEAD = ('completed_depth', 'depth_uncertainty')
DESCRIPTOR_HEAD = ('descriptors',)
HEADS = (COMPLETION_HEAD, DESCRIPTOR_HEAD)


def _constant_nodes(graph: onnx.GraphProto) -> Set[int]:
    """Return the indices of the nodes whose inputs are all constants (or computed from them)."""
    constants = {value.name for value in graph.initializer}
    indices = set()
    for index, node in enumerate(graph.node):
        if node_reads(node) <= constants:
            indices.add(index)
            constants.update(node.output)
    return indices


def split_outputs(model: onnx.ModelProto, outputs: Iterable[str],
                  head: Tuple[str, ...] = COMPLETION_HEAD) -> Tuple[
        onnx.ModelProto, onnx.ModelProto, List[str]]:
    """Cut the sub-graph that computes ``outputs`` before one head.

    Args:
        model: A loaded ONNX model.
        outputs: Graph outputs wanted, at least one of ``head``.
        head: The head's outputs (one of ``HEADS``).

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
    late_wanted = [name for name in wanted if name in head]
    if not late_wanted:
        raise ValueError(f'none of {list(head)} among {wanted}: nothing to split')
    others = [value.name for value in graph.output if value.name not in head]
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
    early = prune_outputs(early, [name for name in wanted if name not in head] + cut)
    late_inputs = [value for value in graph.input if value.name in reads]
    late = graph_of(model, late_nodes, late_wanted, late_inputs + [typed[name] for name in cut])
    return early, late, cut


def split_heads(model: onnx.ModelProto, outputs: Iterable[str], heads=HEADS) -> Tuple[
        onnx.ModelProto, List[str], List[Tuple[onnx.ModelProto, List[str]]]]:
    """Cut the sub-graph that computes ``outputs`` before every head it has a cut for.

    A head whose cut :func:`split_outputs` refuses stays in the early part (logged at info).

    Args:
        model: A loaded ONNX model.
        outputs: Graph outputs wanted.
        heads: The heads to cut off, in the order of ``HEADS`` (a head left out stays in the
            early part).

    Returns:
        ``(early, early_names, lates)``: ``early`` computes ``early_names`` (the wanted outputs
        of no late part, and every cut tensor); ``lates`` is one ``(late, names)`` per head cut
        off, in the order of ``HEADS``: ``late`` reads graph inputs and early outputs (as graph
        inputs of the same names) and computes ``names``.
    """
    early, early_names, lates = model, list(outputs), []
    for head in heads:
        if not any(name in head for name in early_names):
            continue
        try:
            cut_early, late, cut = split_outputs(early, early_names, head)
        except ValueError as error:  # this head stays in the early part
            _logger.info('%s stay in the early part: %s', list(head), error)
            continue
        lates.append((late, [name for name in early_names if name in head]))
        early_names = list(dict.fromkeys(
            [name for name in early_names if name not in head] + cut))
        early = cut_early
    return early, early_names, lates


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
