"""VDModel: contract checks, clear load errors, provider reporting, selective outputs."""

import json
import logging

from contract_model import build_contract_model, depth_of, tiny_contract
import numpy as np
import onnx
from onnx import numpy_helper
import pytest

from vd_ros.core.contract import ContractError
from vd_ros.inference import CPU, CUDA, ModelLoadError, resolve_providers, VDModel


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp('model') / 'tiny.onnx'
    build_contract_model(str(path))
    return str(path)


def random_inputs(contract, seed=0):
    rng = np.random.default_rng(seed)
    height, width = contract.input_size
    rgb = rng.random((1, 3, height, width), dtype=np.float32)
    pde = rng.random((1, contract.pde.channels, height, width), dtype=np.float32)
    return rgb, pde


def test_outputs_follow_contract_and_match_hand_computed_values(model_path):
    model = VDModel(model_path, providers=['cpu'])
    assert model.contract == tiny_contract()
    assert model.active_providers == [CPU]
    rgb, pde = random_inputs(model.contract)
    out = model.run(rgb, pde)
    assert sorted(out) == ['depth', 'features', 'seg_logits']
    assert out['features'].shape == (1, 6, 4, 5)
    assert out['seg_logits'].shape == (1, 3, 4, 5)
    np.testing.assert_allclose(out['depth'], depth_of(rgb), rtol=1e-6)
    # The features at patch (1, 2) are the stride-14 convolution over concat(rgb, pde).
    weights = {t.name: numpy_helper.to_array(t)
               for t in onnx.load(model_path).graph.initializer}
    patch = np.concatenate([rgb, pde], axis=1)[0, :, 14:28, 28:42]  # (3 + C, 14, 14)
    expected = np.einsum('dchw,chw->d', weights['patch_w'], patch) + weights['patch_b']
    np.testing.assert_allclose(out['features'][0, :, 1, 2], expected, rtol=1e-4, atol=1e-5)


def test_run_computes_only_requested_outputs(model_path):
    model = VDModel(model_path, providers=['cpu'])
    rgb, pde = random_inputs(model.contract)
    assert list(model.run(rgb, pde, outputs=['depth'])) == ['depth']
    assert model.run(rgb, pde, outputs=[]) == {}
    with pytest.raises(ValueError, match='normals'):
        model.run(rgb, pde, outputs=['normals'])


def test_run_rejects_wrong_input_shape(model_path):
    model = VDModel(model_path, providers=['cpu'])
    rgb, pde = random_inputs(model.contract)
    with pytest.raises(ValueError, match=r'input pde .*\[1, 8, 56, 70\]'):
        model.run(rgb, pde[:, :4])


def test_missing_file_is_named(tmp_path):
    path = tmp_path / 'nowhere.onnx'
    with pytest.raises(ModelLoadError, match=f'{path}: model file not found'):
        VDModel(str(path), providers=['cpu'])


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / 'corrupt.onnx'
    path.write_bytes(b'\x08\x07not a protobuf' * 10)
    with pytest.raises(ModelLoadError, match=f'{path}: ONNX Runtime cannot load'):
        VDModel(str(path), providers=['cpu'])


def test_model_without_metadata_is_refused(tmp_path):
    path = tmp_path / 'nometa.onnx'
    build_contract_model(str(path), metadata='')
    with pytest.raises(ContractError, match=f'{path}: no "vd_ros" metadata'):
        VDModel(str(path), providers=['cpu'])


def test_other_contract_version_is_refused_with_both_versions(tmp_path):
    path = tmp_path / 'v99.onnx'
    meta = json.loads(tiny_contract().to_json())
    meta['contract_version'] = 99
    build_contract_model(str(path), metadata=json.dumps(meta))
    with pytest.raises(ContractError, match=r'version 99 found, version 1, 2, 3 or 4 expected'):
        VDModel(str(path), providers=['cpu'])


def test_graph_that_disagrees_with_metadata_is_refused(tmp_path):
    path = tmp_path / 'mismatch.onnx'
    build_contract_model(str(path), graph_size=(42, 70))
    with pytest.raises(ContractError, match=r'rgb has shape \[1, 3, 42, 70\].*\[1, 3, 56, 70\]'):
        VDModel(str(path), providers=['cpu'])


def test_active_provider_is_reported_and_fallback_warned(model_path, caplog):
    with caplog.at_level(logging.INFO, logger='vd_ros.inference'):
        model = VDModel(model_path, providers=['cuda', 'cpu'])
    assert model.requested_providers == [CUDA, CPU]
    assert model.active_providers == model.session.get_providers()
    assert f'active execution providers {model.active_providers}' in caplog.text
    fell_back = model.active_provider != CUDA
    warned = any(r.levelno == logging.WARNING and 'fallback' in r.getMessage()
                 for r in caplog.records)
    assert warned == fell_back


def test_provider_names_are_resolved_and_checked():
    assert resolve_providers(['TRT', 'cuda']) == [
        'TensorrtExecutionProvider', CUDA, CPU]
    with pytest.raises(ValueError, match="'gpu'"):
        resolve_providers(['gpu'])
