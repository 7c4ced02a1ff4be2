"""The trained model the repository ships (models/vd_cpu.onnx, models/MODEL_CARD.md).

It is loaded as the node loads it and run on the in-repo sample frame; its contract and a few
known output values (recorded when the file was exported) must match, so a broken, truncated
or silently replaced file fails here.
"""

import os

import numpy as np
import pytest

from vd_ros.core.preprocess import prepare_inputs
from vd_ros.inference import VDModel
from vd_ros.replay import load_frames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, 'models', 'vd_cpu.onnx')


@pytest.fixture(scope='module')
def shipped():
    """Run the shipped model once on the first in-repo sample frame."""
    model = VDModel(MODEL, ['cpu'])
    frame = load_frames('sample', count=1)[0]
    rgb_in, pde, _ = prepare_inputs(frame.rgb, frame.depth_m, model.contract)
    return model.contract, model.run(rgb_in, pde)


def test_contract_says_trained_with_every_output(shipped):
    contract, outputs = shipped
    assert contract.trained and contract.training['steps'] == 3250  # 1050 + 1000 + 1200
    assert contract.contract_version == 2
    assert tuple(contract.input_size) == (126, 168) and contract.feature_dim == 192
    assert set(outputs) == {'features', 'depth', 'seg_logits', 'completed_depth'}
    assert len(contract.class_names) == 22
    # Provenance names files relative to the repository, never the exporting machine's paths.
    training = contract.training
    for path in (training['checkpoint'], training['heads']['file'],
                 training['completion_head']['path']):
        assert path.startswith('runs/'), path
    assert training['completion_head']['step'] == 4719  # warm-started from a 1727-step head
    # The encoder went on from the previous file's weights (training.onnx_recover).
    assert training['warm_start_chain'] == ['runs/recovered/pretrain.pt']


def test_known_outputs_on_the_sample_frame(shipped):
    _, outputs = shipped
    # Recorded from the file at export (fp16-stored weights, float32 compute).
    np.testing.assert_allclose(outputs['features'][0, :4, 4, 6],
                               [1.39888, -0.12877, -0.35174, -0.07467], atol=2e-3)
    np.testing.assert_allclose(outputs['depth'][0, 0, 63, 84], 2.21771, rtol=2e-3)
    completed = outputs['completed_depth'][0, 0]
    # Measured pixels are kept exactly; (0, 0) and (39, 166) are holes the head fills.
    np.testing.assert_allclose([completed[63, 84], completed[20, 30], completed[100, 150],
                                completed[0, 0], completed[39, 166]],
                               [2.1950, 1.4120, 1.4940, 2.8125, 1.8404], rtol=2e-3)
    labels = outputs['seg_logits'][0].argmax(0)
    counts = np.bincount(labels.ravel(), minlength=22)
    assert counts[[0, 1, 2, 3, 5, 14]].tolist() == [924, 572, 76, 58, 60, 38]
    assert counts.sum() == 1728


def test_completed_depth_is_metric_and_finite(shipped):
    _, outputs = shipped
    completed = outputs['completed_depth'][0, 0]
    assert np.isfinite(completed).all()
    # The sample frame (Open3D / ICL-NUIM) spans about 0.95-2.7 m.
    assert 0.5 < np.median(completed) < 3.0
