"""``ros2 param set`` over real DDS: live parameters change at once, bad values are refused.

The rcl_interfaces SetParameters / SetParametersAtomically services are what ``ros2 param set``
and rqt call. A refused change names the reason and leaves every value as it was.
"""

import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters, SetParametersAtomically
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from vd_ros.image_codec import image_to_array
from vd_ros.live_parameters import LIVE
from vd_ros.replay import frame_messages, load_frames


def set_parameters(harness, atomically=False, **values):
    """Set ``values`` (``a__b`` for ``a.b``) over DDS; return the SetParametersResult(s)."""
    srv_type = SetParametersAtomically if atomically else SetParameters
    service = 'set_parameters_atomically' if atomically else 'set_parameters'
    request = srv_type.Request(parameters=[
        Parameter(name.replace('__', '.'), value=value).to_parameter_msg()
        for name, value in values.items()])
    response = harness.call(srv_type, f'/{harness.perception_name}/{service}', request)
    return response.result if atomically else response.results


GOOD = {'segmentation__alpha': 0.9, 'depth__fit_shift': True, 'depth__alignment': 'global',
        'depth__min_m': 0.5, 'depth__max_m': 4.0, 'depth__min_confidence': 0.7,
        'points__stride': 2, 'log_throttle_s': 0.5}


@pytest.mark.ros
def test_every_live_parameter_changes_at_run_time(perception):
    node, harness = perception(topics={})
    assert {name.replace('__', '.') for name in GOOD} == LIVE - {'model_path'}  # test_adapt
    for name, value in GOOD.items():
        result, = set_parameters(harness, **{name: value})
        assert result.successful, (name, result.reason)
        assert node.parameters.values[name.replace('__', '.')] == value
        assert node.get_parameter(name.replace('__', '.')).value == value


@pytest.mark.ros
@pytest.mark.parametrize('values, reason', [
    ({'segmentation__alpha': 1.5}, 'out of range'),
    ({'segmentation__alpha': float('nan')}, 'out of range'),
    ({'segmentation__alpha': 'half'}, 'Wrong parameter type'),
    ({'points__stride': 0}, 'out of range'),
    ({'depth__min_confidence': 1.5}, 'out of range'),
    ({'depth__fit_shift': 1}, 'Wrong parameter type'),
    ({'depth__alignment': 'affine'}, "depth.alignment must be one of ('local', 'global'), got "
                                     "'affine'"),
    ({'log_throttle_s': -1.0}, 'out of range'),
    ({'depth__min_m': 20.0}, 'depth.min_m 20.0 must be below depth.max_m 10.0'),
    ({'depth__max_m': 0.05}, 'depth.min_m 0.1 must be below depth.max_m 0.05'),
    ({'model_path': '/tmp/other.onnx'}, 'cannot load /tmp/other.onnx: /tmp/other.onnx: model '
                                        'file not found'),
    ({'providers': ['cpu']}, 'read-only parameter: providers'),
    ({'sync__slop': 0.05}, 'read-only parameter: sync.slop'),
])
def test_bad_values_are_refused_with_the_reason(perception, values, reason):
    node, harness = perception(topics={})
    before = dict(node.parameters.values)
    result, = set_parameters(harness, **values)
    assert not result.successful and reason in result.reason, result.reason
    assert node.parameters.values == before


@pytest.mark.ros
def test_depth_range_changes_together_or_not_at_all(perception):
    node, harness = perception(topics={})
    # Neither order of two single sets would pass (12 > max 10; then max 20 > min 0.1 is fine,
    # but the first one is refused): atomically the pair is checked as a whole.
    result = set_parameters(harness, atomically=True, depth__min_m=12.0, depth__max_m=20.0)
    assert result.successful, result.reason
    assert (node.parameters.values['depth.min_m'], node.parameters.values['depth.max_m']) == (
        12.0, 20.0)
    result = set_parameters(harness, atomically=True, depth__min_m=3.0, depth__max_m=2.0)
    assert not result.successful and 'must be below' in result.reason
    # One bad value refuses the whole atomic set: alpha stays too.
    result = set_parameters(harness, atomically=True, segmentation__alpha=0.1,
                            depth__max_m=1.0)
    assert not result.successful
    values = node.parameters.values
    assert (values['depth.min_m'], values['depth.max_m'], values['segmentation.alpha']) == (
        12.0, 20.0, 0.5)


@pytest.mark.ros
def test_a_new_depth_range_applies_to_the_next_frame(perception):
    node, harness = perception(topics={'depth': 'Image'})
    frame, = load_frames('sample', count=1, scale=0.25)  # real frame, 160x120
    messages = frame_messages(frame, Header(frame_id='cam'))

    def depth_output():
        harness.frames.publish(*messages)
        stamp = messages[0].header.stamp
        harness.wait_for(lambda: any(m.header.stamp == stamp for m in harness.received['depth']),
                         what='the depth output')
        return image_to_array(harness.received['depth'][-1])

    assert np.nanmax(depth_output()) > 1.5
    result, = set_parameters(harness, depth__max_m=1.5)
    assert result.successful
    depth = depth_output()
    assert np.nanmax(depth) <= 1.5 and np.isfinite(depth).any()
