"""The model-file runner of the quantisation gates feeds sparse inputs as training.evaluate."""

import os

import numpy as np
import pytest

from training.eval.completion_protocol import input_mask, InputPattern
from training.eval.frames import ycbv_frame
from training.eval.onnx_runner import OnnxRunner
from training.eval.vd_model import load_vd_model, VDRunner

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'models', 'vd_cpu.onnx')
TINY = {'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}}


@pytest.fixture(scope='module')
def shipped_runner():
    """Open the shipped model file in one ONNX Runtime thread."""
    return OnnxRunner(SHIPPED, threads=1)


def test_gate_paths_feed_the_model_what_the_torch_runner_feeds(shipped_runner, shared_data,
                                                               monkeypatch):
    """Check: the confidence and completion gates' inputs of 150 points equal VDRunner's.

    ``training.evaluate --task confidence`` (VDRunner) and the int8 gates (OnnxRunner) must
    give the model the same rgb and pde, or their figures disagree for the same file: a
    nearest-neighbour resize keeps about 1 in 14 of the points, the splat almost all. The
    node's own preparation (``OnnxRunner.run``) gives the same for so sparse an input.
    """
    model, _ = load_vd_model(TINY, None)
    assert model.pde_config == shipped_runner.contract.pde
    torch_runner = VDRunner(model, shipped_runner.contract.input_size)
    frame = ycbv_frame(shared_data, '0001', 3)
    mask = input_mask(frame.depth_m, InputPattern('points', 150), 0)
    sparse = np.where(mask, frame.depth_m, 0.0).astype(np.float32)
    rgb_expected, pde_expected, _ = torch_runner.model_inputs(frame.rgb, sparse)
    fed = []
    real_run = shipped_runner.model.run

    def recording_run(rgb_in: np.ndarray, pde: np.ndarray) -> dict:
        fed.append((rgb_in, pde))
        return real_run(rgb_in, pde)
    monkeypatch.setattr(shipped_runner.model, 'run', recording_run)
    shipped_runner.maps().run(frame.rgb, sparse)  # the confidence gate
    shipped_runner.completion_method()(frame, sparse)  # the completion gate
    assert len(fed) == 2
    for rgb_in, pde in fed:
        np.testing.assert_array_equal(rgb_in, rgb_expected.numpy())
        np.testing.assert_array_equal(pde, pde_expected.numpy())
    shipped_runner.run(frame.rgb, sparse)  # the node's preparation splats sparse depth too
    np.testing.assert_array_equal(fed[-1][1], pde_expected.numpy())
