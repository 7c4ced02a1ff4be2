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
    assert contract.contract_version == 3
    assert tuple(contract.input_size) == (126, 168) and contract.feature_dim == 192
    assert set(outputs) == {'features', 'depth', 'seg_logits', 'completed_depth',
                            'depth_uncertainty'}
    assert len(contract.class_names) == 22
    # Provenance names files relative to the repository, never the exporting machine's paths.
    training = contract.training
    for path in (training['checkpoint'], training['heads']['file'],
                 training['completion_head']['path']):
        assert path.startswith('runs/'), path
    # Weights recovered from the previous file (training.onnx_recover), which was exported
    # from the 1200-step cpu7 run; the head's depth is that file's 4719-step head, its
    # uncertainty branch trained 761 steps beside it (completion.freeze_depth).
    assert training['recovered_from']['checkpoint'] == 'runs/cpu7/checkpoints/step_00001200.pt'
    head = training['completion_head']
    assert head['step'] == 761 and head['init_from'] == 'runs/recovered/completion_head.pt'
    assert head['head_config']['uncertainty'] is True
    # The uncertainty is calibrated on the validation split, never on the test split.
    calibration = head['calibration']
    assert calibration['split'] == 'data/7scenes_redkitchen select [250, 300]'
    assert calibration['frames'] == 50 and calibration['scale'] == pytest.approx(1.117, abs=1e-3)


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
    uncertainty = outputs['depth_uncertainty'][0, 0]
    # 0 where measured; the two holes above: 0.294 m at 2.81 m, 0.045 m at 1.84 m.
    np.testing.assert_allclose([uncertainty[63, 84], uncertainty[20, 30], uncertainty[0, 0],
                                uncertainty[39, 166]], [0.0, 0.0, 0.29368, 0.04480],
                               rtol=2e-3, atol=1e-7)
    labels = outputs['seg_logits'][0].argmax(0)
    counts = np.bincount(labels.ravel(), minlength=22)
    assert counts[[0, 1, 2, 3, 5, 14]].tolist() == [924, 572, 76, 58, 60, 38]
    assert counts.sum() == 1728


def test_completed_depth_is_metric_and_finite(shipped):
    _, outputs = shipped
    completed = outputs['completed_depth'][0, 0]
    assert np.isfinite(completed).all()
    uncertainty = outputs['depth_uncertainty'][0, 0]
    holes = uncertainty > 0
    assert np.isfinite(uncertainty).all() and uncertainty.min() >= 0.0
    assert 0.05 < holes.mean() < 0.5  # the sample frame's holes (13 %); measured pixels: 0
    relative = uncertainty[holes] / completed[holes]
    assert 0.005 < np.median(relative) < 0.3  # an expected error of a few per cent
    # The sample frame (Open3D / ICL-NUIM) spans about 0.95-2.7 m.
    assert 0.5 < np.median(completed) < 3.0
