"""The shipped descriptor head added to the shipped float model (``make descriptors``)."""

import os
import tempfile

import numpy as np
import torch

from training import descriptor_model
from training.export.recover import calibration_inputs
from vd_ros.inference import VDModel


def test_shipped_head_gives_the_shipped_model_with_descriptors(tmp_path):
    """Contract v4, the float file's outputs as they were, unit descriptors 4x the patch grid."""
    output = str(tmp_path / 'with_descriptors.onnx')
    assert descriptor_model.main(['--output', output]) == 0
    assert not os.path.exists(f'{output}.partial')
    shipped, model = VDModel('models/vd_cpu.onnx', ['cpu']), VDModel(output, ['cpu'])
    assert model.contract.contract_version == 4
    assert model.output_names == shipped.output_names + ('descriptors',)
    metadata = model.session.get_modelmeta().custom_metadata_map['vd_ros']
    assert '"onnx_recover(models/vd_cpu.onnx)/pretrain.pt"' in metadata
    assert tempfile.gettempdir() not in metadata  # the recovery's folder is gone
    rgb_in, pde = (tensor.numpy() for tensor in calibration_inputs(model.contract)[0])
    expected, found = shipped.run(rgb_in, pde), model.run(rgb_in, pde)
    for name, value in expected.items():
        assert np.abs(found[name] - value).max() <= 1e-4 * np.abs(value).max(), name
    descriptors = found['descriptors']  # (1, dim, 4h, 4w)
    patches = np.array(model.contract.input_size) // model.contract.patch_size
    assert descriptors.shape[2:] == tuple(4 * patches)
    assert np.allclose(np.linalg.norm(descriptors[0], axis=0), 1.0, atol=1e-3)
    model.prepare(model.output_names)  # the node's parts: the descriptor head runs last
    model.wait_for_sub_sessions()
    batches = list(model.run_staged(rgb_in, pde).batches())
    assert [sorted(batch) for batch in batches] == [sorted(shipped.output_names),
                                                    ['descriptors']]
    for name, value in {**batches[0], **batches[1]}.items():
        np.testing.assert_array_equal(value, found[name], err_msg=name)


def test_a_changed_output_writes_nothing(tmp_path, monkeypatch):
    """When the new file would change an output of the float file, it is not written."""
    output = str(tmp_path / 'with_descriptors.onnx')
    monkeypatch.setattr(descriptor_model, 'output_changes',
                        lambda source, candidate: {'depth': 0.1, 'features': 0.0})
    assert descriptor_model.main(['--output', output]) == 1
    assert os.listdir(tmp_path) == []


def test_a_head_of_another_encoder_is_refused(tmp_path):
    """A head whose checkpoint names other encoder weights writes nothing."""
    state = torch.load('models/descriptor_head.pt', weights_only=True)
    state['encoder']['fingerprint'] = '0' * 64
    head = str(tmp_path / 'head.pt')
    torch.save(state, head)
    output = str(tmp_path / 'out' / 'with_descriptors.onnx')
    os.makedirs(os.path.dirname(output))
    assert descriptor_model.main(['--head', head, '--output', output]) == 1
    assert os.listdir(os.path.dirname(output)) == []
