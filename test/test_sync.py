"""vd_ros.sync against the real message_filters.ApproximateTimeSynchronizer, and over DDS."""

import gc
import os
import random
import time
import types

from builtin_interfaces.msg import Time
import pytest
from std_msgs.msg import Header

from vd_ros.sync import ApproximateTimeSync, subscribe_synchronized

MS = 1000 * 1000  # nanoseconds
NO_MESSAGE_FILTERS = ('ROS 2 message_filters is not importable (it comes from '
                      '../shared/third_party, absent in a bare clone)')


def import_message_filters():
    """Return the real message_filters module, or skip the test saying why."""
    return pytest.importorskip('message_filters', reason=NO_MESSAGE_FILTERS)


def stamped(index, stamp_ns):
    """Return a message-like object with a header stamp, tagged by input and stamp."""
    stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return types.SimpleNamespace(header=Header(stamp=stamp), tag=(index, stamp_ns))


def pairs_message_filters(events, queue_size, slop, n_inputs=2):
    """Feed ``events`` [(input, stamp_ns)] to message_filters; return the emitted tag sets."""
    message_filters = import_message_filters()
    filters = [message_filters.SimpleFilter() for _ in range(n_inputs)]
    synchronizer = message_filters.ApproximateTimeSynchronizer(filters, queue_size, slop)
    emitted = []
    synchronizer.registerCallback(lambda *msgs: emitted.append(tuple(m.tag for m in msgs)))
    for index, stamp_ns in events:
        filters[index].signalMessage(stamped(index, stamp_ns))
    return emitted


def pairs_vd_ros(events, queue_size, slop, n_inputs=2):
    """Feed ``events`` to vd_ros.sync.ApproximateTimeSync; return the emitted tag sets."""
    emitted = []
    synchronizer = ApproximateTimeSync(
        queue_size, slop, lambda *msgs: emitted.append(tuple(m.tag for m in msgs)), n_inputs)
    for index, stamp_ns in events:
        synchronizer.add(index, stamped(index, stamp_ns))
    return emitted


def camera_events(rng, frames, period_ms=33, offset_ms=5, jitter_ms=0.0, drop=0.0,
                  max_delay_ms=0.0, n_inputs=2):
    """Simulate n cameras: stamps with jitter and drops, arriving after a random delay."""
    events = []
    for frame in range(frames):
        for index in range(n_inputs):
            if rng.random() < drop:
                continue
            stamp = frame * period_ms + index * offset_ms + rng.uniform(-jitter_ms, jitter_ms)
            arrival = stamp + rng.uniform(0.0, max_delay_ms)
            events.append((arrival, index, int(round(stamp * MS)) + 10**12))
    events.sort()
    return [(index, stamp) for _, index, stamp in events]


def assert_same(events, queue_size, slop, n_inputs=2):
    """Assert both implementations emit the same sets; return them."""
    expected = pairs_message_filters(events, queue_size, slop, n_inputs)
    assert pairs_vd_ros(events, queue_size, slop, n_inputs) == expected
    return expected


def test_hand_computed_pairs():
    events = [(0, 0), (1, 3 * MS), (0, 40 * MS), (0, 80 * MS), (1, 75 * MS), (1, 200 * MS)]
    expected = [((0, 0), (1, 3 * MS)), ((0, 80 * MS), (1, 75 * MS))]
    assert pairs_vd_ros(events, 10, 0.01) == expected
    assert pairs_message_filters(events, 10, 0.01) == expected


def test_slop_edges():
    # Candidates are taken within slop inclusive, but a set must span strictly less than slop.
    slop_ns = 10 * MS
    for delta, paired in ((slop_ns - 1, True), (slop_ns, False), (slop_ns + 1, False)):
        events = [(0, 10**9), (1, 10**9 + delta)]
        assert bool(assert_same(events, 5, 0.01)) == paired, delta
    assert assert_same([(0, 5 * MS), (1, 5 * MS)], 5, 0.0) == []  # slop 0 never matches


def test_closest_candidate_wins_and_ties_keep_arrival_order():
    events = [(1, 96 * MS), (1, 104 * MS), (1, 101 * MS), (0, 100 * MS)]
    assert assert_same(events, 5, 0.01) == [((0, 100 * MS), (1, 101 * MS))]
    events = [(1, 104 * MS), (1, 96 * MS), (0, 100 * MS)]
    assert assert_same(events, 5, 0.01) == [((0, 100 * MS), (1, 104 * MS))]


def test_queue_overflow_drops_smallest_stamp_even_when_new():
    # Queue of 2 holding 200 and 300 ms: a late 100 ms message is dropped on arrival.
    events = [(0, 200 * MS), (0, 300 * MS), (0, 100 * MS), (1, 101 * MS), (1, 201 * MS)]
    assert assert_same(events, 2, 0.01) == [((0, 200 * MS), (1, 201 * MS))]


def test_duplicate_stamp_replaces_queued_message():
    events = [(0, 50 * MS), (0, 50 * MS), (1, 52 * MS), (1, 53 * MS)]
    assert assert_same(events, 3, 0.01) == [((0, 50 * MS), (1, 52 * MS))]


@pytest.mark.parametrize('seed', range(4))
def test_camera_streams_match_message_filters(seed):
    rng = random.Random(seed)
    scenarios = [
        {'jitter_ms': 2.0},
        {'jitter_ms': 3.0, 'drop': 0.3},
        {'jitter_ms': 1.0, 'max_delay_ms': 120.0},  # out of order arrival across inputs
        {'offset_ms': 14, 'jitter_ms': 4.0, 'drop': 0.1, 'max_delay_ms': 60.0},
    ]
    for scenario in scenarios:
        for queue_size, slop in ((1, 0.02), (3, 0.01), (10, 0.015), (10, 0.05)):
            events = camera_events(rng, 60, **scenario)
            emitted = assert_same(events, queue_size, slop)
            if scenario == scenarios[0] and queue_size == 10:
                assert len(emitted) >= 55, (scenario, queue_size, slop)


def test_three_inputs_and_random_stamps_match_message_filters():
    rng = random.Random(7)
    emitted = assert_same(camera_events(rng, 40, jitter_ms=3.0, drop=0.2, max_delay_ms=50.0,
                                        n_inputs=3), 4, 0.012, n_inputs=3)
    assert emitted and all(len(s) == 3 for s in emitted)
    total = 0
    for _ in range(30):
        events = [(rng.randrange(2), rng.randrange(0, 400) * MS) for _ in range(80)]
        total += len(assert_same(events, rng.choice((1, 2, 5, 20)), rng.choice((0.003, 0.02))))
    assert total > 100


def test_headerless_messages_are_counted_and_dropped():
    synchronizer = ApproximateTimeSync(5, 0.01, lambda *msgs: None)
    synchronizer.add(0, object())
    assert synchronizer.headerless_drops == 1
    with pytest.raises(IndexError, match='3'):
        synchronizer.add(3, stamped(0, 0))
    with pytest.raises(ValueError, match='-1'):
        ApproximateTimeSync(5, -1.0, print)


@pytest.mark.ros
@pytest.mark.parametrize('use_message_filters', [True, False])
def test_subscribe_synchronized_over_dds(use_message_filters):
    if use_message_filters:
        import_message_filters()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=os.getpid() % 100 + 100)
    node = rclpy.create_node(f'vd_sync_test_{os.getpid()}', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received, arrivals = [], []
    try:
        topics = [f'/vd_sync_test_{os.getpid()}_{use_message_filters}/{name}'
                  for name in ('rgb', 'depth')]
        implementation, subscriptions = subscribe_synchronized(
            node, [Image, Image], topics, 10, 5, 0.01,
            lambda rgb, depth: received.append((rgb.header.frame_id, depth.header.frame_id)),
            use_message_filters=use_message_filters, on_message=arrivals.append)
        assert implementation == ('message_filters' if use_message_filters else 'vd_ros.sync')
        assert sorted(sub.topic_name for sub in subscriptions) == sorted(topics)
        gc.collect()  # the node alone must keep the synchronizer alive
        publishers = [node.create_publisher(Image, topic, 10) for topic in topics]
        deadline = time.monotonic() + 20.0
        frame = 0
        while len(received) < 5 and time.monotonic() < deadline:
            for index, publisher in enumerate(publishers):
                msg = Image(encoding='mono8', height=1, width=1, step=1, data=b'\x00')
                msg.header.frame_id = str(frame)
                msg.header.stamp.sec = 1000 + frame
                msg.header.stamp.nanosec = index * 3 * MS  # depth 3 ms after rgb
                publisher.publish(msg)
            frame += 1
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert len(received) >= 5, f'{len(received)} pairs after {frame} frames'
    assert all(rgb == depth for rgb, depth in received), received
    # Every message is counted on its input, paired or not (per-input counts of the node).
    assert set(arrivals) == {0, 1} and len(arrivals) >= 2 * len(received)
