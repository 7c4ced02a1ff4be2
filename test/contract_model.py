"""Test helper: a tiny ONNX model that follows the vd_ros model contract exactly.

The graph (built with ``onnx.helper``, no torch needed) is small and fully known, so tests can
compute its outputs by hand:

* ``features`` (1, D, H/p, W/p): a stride-p convolution over ``concat(rgb, pde)``.
* ``depth`` (1, 1, H, W): ``DEPTH_OFFSET_M + mean over channels of rgb``, always positive.
* ``seg_logits`` (1, K, H/p, W/p): a 1x1 convolution of ``features``.
* ``completed_depth`` (1, 1, H, W), optional (contract v2): ``COMPLETED_FACTOR * depth``.
* ``depth_uncertainty`` (1, 1, H, W), optional (contract v3): ``completed_depth`` times
  ``UNCERTAINTY_SHARE`` times the mean over channels of rgb (a relative uncertainty that
  follows the image, so the node's confidence is ``exp(-UNCERTAINTY_SHARE * mean rgb)``).
* ``descriptors`` (1, D, 4H/p, 4W/p), optional (contract v4): ``features`` upsampled 4x by
  nearest neighbour and L2-normalised over the channels.
"""

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

from vd_ros.core.contract import METADATA_KEY, ModelContract
from vd_ros.core.pde import PDEConfig

DEPTH_OFFSET_M = 0.5
COMPLETED_FACTOR = 4.0
UNCERTAINTY_SHARE = 0.5
OPSET = 17


def tiny_contract(height: int = 56, width: int = 70, patch: int = 14, channels: int = 8,
                  feature_dim: int = 6, class_names=('background', 'table', 'chair'),
                  trained: bool = False, completed_depth: bool = False,
                  depth_uncertainty: bool = False, descriptors: bool = False) -> ModelContract:
    """Return the tiny model's contract: v2, v3 with ``depth_uncertainty``, v4 with descriptors.

    ``depth_uncertainty`` needs ``completed_depth``.
    """
    outputs = ('features', 'depth', 'seg_logits') if class_names else ('features', 'depth')
    outputs += ('completed_depth',) if completed_depth else ()
    outputs += ('depth_uncertainty',) if depth_uncertainty else ()
    outputs += ('descriptors',) if descriptors else ()
    return ModelContract(
        encoder='test_contract_model', patch_size=patch, input_size=(height, width),
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        pde=PDEConfig(channels=channels), feature_dim=feature_dim,
        class_names=tuple(class_names), trained=trained, outputs=outputs,
        training={'data': 'none', 'note': 'test/contract_model.py, random weights'},
        contract_version=4 if descriptors else 3 if depth_uncertainty else 2)


def depth_of(rgb_in: np.ndarray) -> np.ndarray:
    """Return the ``depth`` output the tiny model computes for ``rgb`` (1, 3, H, W)."""
    return DEPTH_OFFSET_M + rgb_in.mean(axis=1, keepdims=True)  # (1, 1, H, W)


def build_contract_model(path: str, contract: ModelContract = None, metadata: str = None,
                         graph_size=None, seed: int = 0) -> ModelContract:
    """Write the tiny contract model to ``path``.

    Args:
        path: Output ``.onnx`` file.
        contract: Contract to follow (default :func:`tiny_contract`).
        metadata: JSON stored under the ``vd_ros`` key instead of ``contract.to_json()``;
            an empty string stores no metadata at all (to test refusals).
        graph_size: (H, W) of the graph inputs when it must differ from the metadata.
        seed: Seed of the random weights.

    Returns:
        The contract written (or meant to be written) in the metadata.
    """
    contract = contract or tiny_contract()
    height, width = graph_size or contract.input_size
    patch, channels = contract.patch_size, contract.pde.channels
    dim, classes = contract.feature_dim, len(contract.class_names)
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, 0.05, (dim, 3 + channels, patch, patch)).astype(np.float32)
    nodes = [
        helper.make_node('Concat', ['rgb', 'pde'], ['rgbd'], axis=1),  # (1, 3 + C, H, W)
        helper.make_node('Conv', ['rgbd', 'patch_w', 'patch_b'], ['features'],
                         kernel_shape=[patch, patch], strides=[patch, patch]),
        helper.make_node('ReduceMean', ['rgb'], ['rgb_mean'], axes=[1], keepdims=1),
        helper.make_node('Add', ['rgb_mean', 'depth_offset'], ['depth']),  # (1, 1, H, W)
    ]
    initializers = [
        numpy_helper.from_array(weight, 'patch_w'),
        numpy_helper.from_array(rng.normal(0.0, 0.1, dim).astype(np.float32), 'patch_b'),
        numpy_helper.from_array(np.array(DEPTH_OFFSET_M, np.float32), 'depth_offset'),
    ]
    grid = [1, dim, height // patch, width // patch]
    outputs = [helper.make_tensor_value_info('features', TensorProto.FLOAT, grid),
               helper.make_tensor_value_info('depth', TensorProto.FLOAT, [1, 1, height, width])]
    if 'completed_depth' in contract.outputs:
        nodes.append(helper.make_node('Mul', ['depth', 'completed_factor'], ['completed_depth']))
        initializers.append(numpy_helper.from_array(np.array(COMPLETED_FACTOR, np.float32),
                                                    'completed_factor'))
        outputs.append(helper.make_tensor_value_info('completed_depth', TensorProto.FLOAT,
                                                     [1, 1, height, width]))
    if 'depth_uncertainty' in contract.outputs:
        nodes += [helper.make_node('Mul', ['rgb_mean', 'uncertainty_share'], ['relative']),
                  helper.make_node('Mul', ['completed_depth', 'relative'],
                                   ['depth_uncertainty'])]
        initializers.append(numpy_helper.from_array(np.array(UNCERTAINTY_SHARE, np.float32),
                                                    'uncertainty_share'))
        outputs.append(helper.make_tensor_value_info('depth_uncertainty', TensorProto.FLOAT,
                                                     [1, 1, height, width]))
    if 'descriptors' in contract.outputs:
        nodes += [helper.make_node('Resize', ['features', '', 'descriptor_scales'],
                                   ['features_x4'], mode='nearest'),
                  helper.make_node('LpNormalization', ['features_x4'], ['descriptors'],
                                   axis=1, p=2)]
        initializers.append(numpy_helper.from_array(np.array([1, 1, 4, 4], np.float32),
                                                    'descriptor_scales'))
        outputs.append(helper.make_tensor_value_info(
            'descriptors', TensorProto.FLOAT, [1, dim, 4 * grid[2], 4 * grid[3]]))
    if classes:
        nodes.append(helper.make_node('Conv', ['features', 'seg_w', 'seg_b'], ['seg_logits'],
                                      kernel_shape=[1, 1]))
        initializers += [
            numpy_helper.from_array(
                rng.normal(0.0, 1.0, (classes, dim, 1, 1)).astype(np.float32), 'seg_w'),
            numpy_helper.from_array(np.zeros(classes, np.float32), 'seg_b')]
        outputs.append(helper.make_tensor_value_info(
            'seg_logits', TensorProto.FLOAT, [1, classes, *grid[2:]]))
    inputs = [
        helper.make_tensor_value_info('rgb', TensorProto.FLOAT, [1, 3, height, width]),
        helper.make_tensor_value_info('pde', TensorProto.FLOAT, [1, channels, height, width])]
    graph = helper.make_graph(nodes, 'vd_ros_contract_model', inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)])
    model.ir_version = 8
    text = contract.to_json() if metadata is None else metadata
    if text:
        helper.set_model_props(model, {METADATA_KEY: text})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return contract


def random_inputs(contract: ModelContract, seed: int = 0) -> tuple:
    """Return (rgb, pde) float32 inputs of the contract's size, uniform in [0, 1)."""
    rng = np.random.default_rng(seed)
    height, width = contract.input_size
    return (rng.random((1, 3, height, width), dtype=np.float32),
            rng.random((1, contract.pde.channels, height, width), dtype=np.float32))
