"""The managed (lifecycle) node driven over real DDS with the lifecycle_msgs services.

Every transition: configure (model loaded, publishers made), activate (inputs subscribed,
frames processed), deactivate (input stopped, model kept), activate again, cleanup (everything
freed), configure again, shutdown. A model that cannot load makes configure fail with the
reason while the node stays alive and managed.
"""

import time

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
import pytest
from std_msgs.msg import Header

from vd_ros.replay import frame_messages, load_frames


@pytest.fixture(scope='module')
def small_frame():
    frame, = load_frames('sample', count=1, scale=0.25)  # real frame, 160x120
    return frame_messages(frame, Header(frame_id='cam'))


def change(harness, transition: int) -> bool:
    request = ChangeState.Request()
    request.transition.id = transition
    return harness.call(ChangeState, f'/{harness.perception_name}/change_state',
                        request).success


def state(harness) -> int:
    return harness.call(GetState, f'/{harness.perception_name}/get_state',
                        GetState.Request(), resend_s=5.0).current_state.id


def input_subscribers(harness) -> int:
    return harness.frames.rgb.get_subscription_count()


def feed_until_output(harness, messages, timeout: float = 60.0) -> None:
    """Publish the frame every 0.3 s until a depth output with its stamp arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        harness.frames.publish(*messages)
        stamp = messages[0].header.stamp
        time.sleep(0.3)
        if any(m.header.stamp == stamp for m in harness.received['depth']):
            return
    pytest.fail(f'no depth output within {timeout} s')


@pytest.mark.ros
def test_every_transition_over_dds(perception, small_frame):
    node, harness = perception(topics={'depth': 'Image'}, connect=False, managed=True)
    assert state(harness) == State.PRIMARY_STATE_UNCONFIGURED
    assert node.model is None and not node._outputs

    assert change(harness, Transition.TRANSITION_CONFIGURE)
    assert state(harness) == State.PRIMARY_STATE_INACTIVE
    model = node.model
    assert model is not None and 'depth' in node._outputs
    assert input_subscribers(harness) == 0  # inactive: no input yet

    assert change(harness, Transition.TRANSITION_ACTIVATE)
    assert state(harness) == State.PRIMARY_STATE_ACTIVE
    harness.wait_connected(node)
    feed_until_output(harness, small_frame)

    assert change(harness, Transition.TRANSITION_DEACTIVATE)
    assert state(harness) == State.PRIMARY_STATE_INACTIVE
    harness.wait_for(lambda: input_subscribers(harness) == 0, what='the inputs to go')
    assert node.model is model  # the model stays loaded
    pairs = node.stats.snapshot()['pairs_received']
    harness.frames.publish(*small_frame)
    time.sleep(0.5)
    assert node.stats.snapshot()['pairs_received'] == pairs  # nothing comes in

    assert change(harness, Transition.TRANSITION_ACTIVATE)  # resumes on the same model
    harness.wait_connected(node)
    feed_until_output(harness, small_frame)
    assert node.model is model

    assert change(harness, Transition.TRANSITION_DEACTIVATE)
    assert change(harness, Transition.TRANSITION_CLEANUP)
    assert state(harness) == State.PRIMARY_STATE_UNCONFIGURED
    assert node.model is None and not node._outputs and node._pipeline is None
    assert harness.node.count_publishers(f'/{harness.perception_name}/depth') == 0

    assert change(harness, Transition.TRANSITION_CONFIGURE)  # loads the model again
    assert node.model is not None and node.model is not model
    assert change(harness, Transition.TRANSITION_ACTIVATE)
    harness.wait_for(lambda: input_subscribers(harness) > 0, what='the inputs')
    assert change(harness, Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert state(harness) == State.PRIMARY_STATE_FINALIZED
    assert node.model is None and not node._outputs and node._pipeline is None
    harness.wait_for(lambda: input_subscribers(harness) == 0, what='the inputs to go')


@pytest.mark.ros
def test_failing_model_fails_configure_with_the_reason_and_the_node_stays(
        perception, tmp_path, capfd):
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'garbage' * 20)
    node, harness = perception(topics={'depth': 'Image'}, connect=False, managed=True,
                               model_path=str(corrupt))
    assert not change(harness, Transition.TRANSITION_CONFIGURE)
    assert state(harness) == State.PRIMARY_STATE_UNCONFIGURED  # alive, still managed
    assert f'{corrupt}: ONNX Runtime cannot load' in str(node.configure_error)
    assert f'configure failed: {corrupt}: ONNX Runtime cannot load' in capfd.readouterr().err
    assert not change(harness, Transition.TRANSITION_ACTIVATE)  # not from unconfigured
    assert state(harness) == State.PRIMARY_STATE_UNCONFIGURED
    assert change(harness, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert state(harness) == State.PRIMARY_STATE_FINALIZED
