"""Store an ONNX graph's large float32 weights as float16 while it still computes in float32.

Each float32 initializer with at least ``min_elements`` values is replaced by a float16 copy
and a ``Cast`` back to float32 under the original name, so every node reads the same tensor as
before. ONNX Runtime folds these casts into float32 constants when it loads the session, so
the file is about half the size and the calls run exactly as fast as the float32 export (on
this CPU the float16-compute export of ``--fp16`` is slower); the only change is the rounding
of each weight to float16 (relative error <= 2 ** -11).
"""

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def store_weights_fp16(proto: onnx.ModelProto, min_elements: int = 1024) -> int:
    """Convert the large float32 initializers of ``proto`` in place (module docstring).

    Args:
        proto: The model; its graph is modified.
        min_elements: Smaller initializers (biases, norms, shapes) stay float32.

    Returns:
        The number of initializers converted.

    Raises:
        ValueError: A weight exceeds the float16 range (it would become Inf).
    """
    graph = proto.graph
    casts, kept = [], []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or np.prod(tensor.dims) < min_elements:
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        if np.abs(values).max() > np.finfo(np.float16).max:
            raise ValueError(f'initializer {tensor.name!r} exceeds the float16 range')
        stored = numpy_helper.from_array(values.astype(np.float16), f'{tensor.name}__fp16')
        kept.append(stored)
        casts.append(helper.make_node('Cast', [stored.name], [tensor.name],
                                      to=TensorProto.FLOAT, name=f'{tensor.name}__to_fp32'))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)


def restore_weights_fp32(proto: onnx.ModelProto) -> int:
    """Undo :func:`store_weights_fp16` in place: float32 initializers, no casts.

    Tools that read weights as initializers (static quantisation finds a Conv's or MatMul's
    weight by its initializer) need this; the values are the stored float16 ones, exactly.

    Args:
        proto: The model; its graph is modified.

    Returns:
        The number of weights restored.
    """
    graph = proto.graph
    stored = {tensor.name: tensor for tensor in graph.initializer
              if tensor.data_type == TensorProto.FLOAT16}
    casts = [node for node in graph.node
             if node.op_type == 'Cast' and len(node.input) == 1 and node.input[0] in stored
             and helper.get_attribute_value(node.attribute[0]) == TensorProto.FLOAT]
    restored = {node.input[0]: numpy_helper.from_array(
        numpy_helper.to_array(stored[node.input[0]]).astype(np.float32), node.output[0])
        for node in casts}
    kept = [tensor for tensor in graph.initializer if tensor.name not in restored]
    del graph.initializer[:]
    graph.initializer.extend(kept + list(restored.values()))
    nodes = [node for node in graph.node if not any(node is cast for cast in casts)]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)
