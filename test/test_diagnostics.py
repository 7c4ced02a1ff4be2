"""UnsyncedFrameCounter with hand-made stamps; DropLog's throttle; the node's status message."""

from types import SimpleNamespace

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from vd_ros.diagnostics import (DropLog, NodeDiagnostics, NodeStatistics, status_values,
                                UnsyncedFrameCounter)

MS = 10**6
S = 10**9


def feed(counter, stamps, paired):
    """Note each frame (camera_info first), then its pair when paired; return the counts."""
    counts = []
    for stamp in stamps:
        counts.append(counter.note_frame(stamp))
        if paired(stamp):
            counter.note_pair(stamp + 5 * MS)  # within the 20 ms tolerance
    return counts


def test_unpaired_frame_counted_once_after_the_horizon():
    counter = UnsyncedFrameCounter(horizon_s=1.0, tolerance_s=0.02)
    stamps = [100 * S + i * 100 * MS for i in range(25)]  # 10 Hz, 2.4 s
    counts = feed(counter, stamps, paired=lambda s: s != stamps[3])
    # stamps[3] (100.3 s) expires with the first frame later than 101.3 s: stamps[14].
    assert counts == [0] * 14 + [1] + [0] * 10


def test_stamps_jumping_back_do_not_make_paired_frames_unsynced():
    counter = UnsyncedFrameCounter(horizon_s=1.0, tolerance_s=0.02)
    first = [100 * S + i * 100 * MS for i in range(20)]
    looped = [90 * S + i * 100 * MS for i in range(30)]  # the bag starts over, 10 s earlier
    assert sum(feed(counter, first + looped + [95 * S], paired=lambda s: True)) == 0
    # The new timeline still counts its own unpaired frames (90.5 s, expired at 91.6 s).
    counter = UnsyncedFrameCounter(horizon_s=1.0, tolerance_s=0.02)
    counts = feed(counter, first + looped, paired=lambda s: s != looped[5])
    assert sum(counts) == 1 and counts[len(first) + 16] == 1


def test_one_frame_stamped_far_off_does_not_make_its_neighbours_unsynced():
    # A frame stamped an hour in the past or future, between frames whose pairs are noted
    # only after it (the executor may handle camera_info before the images).
    for outlier in (100 * S - 3600 * S, 100 * S + 3600 * S):
        counter = UnsyncedFrameCounter(horizon_s=1.0, tolerance_s=0.02)
        assert counter.note_frame(100 * S, now=0.0) == 0
        assert counter.note_frame(outlier, now=0.01) == 0
        counter.note_pair(100 * S)
        counter.note_pair(outlier)
        assert counter.note_frame(100 * S + 33 * MS, now=0.03) == 0
        counter.note_pair(100 * S + 33 * MS)
        assert counter.note_frame(102 * S, now=2.0) == 0


def test_old_timeline_frames_left_unpaired_are_counted_a_horizon_after_the_jump():
    counter = UnsyncedFrameCounter(horizon_s=1.0, tolerance_s=0.02)
    assert counter.note_frame(100 * S, now=0.0) == 0  # never paired
    assert counter.note_frame(50 * S, now=0.1) == 0  # might still be paired
    counter.note_pair(50 * S)
    assert counter.note_frame(50 * S + 100 * MS, now=1.05) == 0
    assert counter.note_frame(50 * S + 200 * MS, now=1.2) == 1


def test_every_drop_is_counted_but_logged_once_per_cause_and_period():
    stats, lines, now, period = NodeStatistics(), [], [100.0], [5.0]
    drop = DropLog(stats, lines.append, lambda: period[0], clock=lambda: now[0])
    drop('bad_encoding', 'mono1 is not an image')
    now[0] = 102.0
    drop('bad_encoding', 'again')  # within 5 s of the last line: counted, not logged
    drop('oversized', 'big')  # another cause has its own period
    now[0] = 105.0
    drop('bad_encoding', 'later')
    assert lines == ['dropped frame (bad_encoding, 1 so far): mono1 is not an image',
                     'dropped frame (oversized, 1 so far): big',
                     'dropped frame (bad_encoding, 3 so far): later']
    assert stats.snapshot()['drops']['bad_encoding'] == 3
    period[0] = 0.0  # log_throttle_s changed at run time: every drop is logged
    drop('bad_encoding', 'now')
    drop('bad_encoding', 'and now')
    assert lines[-2:] == ['dropped frame (bad_encoding, 4 so far): now',
                          'dropped frame (bad_encoding, 5 so far): and now']


def test_the_node_status_names_model_stages_inputs_and_warns_only_on_new_drops():
    model = SimpleNamespace(path='/m/vd.onnx', contract=SimpleNamespace(trained=True),
                            active_provider='CPUExecutionProvider',
                            requested_providers=['CUDAExecutionProvider', 'CPUExecutionProvider'])
    stats, builder = NodeStatistics(), NodeDiagnostics('/vd_perception')
    stats.count_drop('stale')
    stages = {'stage_model_p50_ms': 12.5}

    def status():
        array = builder.array(stats.snapshot(), model, 'vd_ros.sync', stages,
                              {'rgb': 30, 'camera_info': 31}, Time(sec=9))
        assert array.header.stamp.sec == 9 and len(array.status) == 1
        return array.status[0]

    first = status()
    assert first.name == '/vd_perception' and first.hardware_id == 'CPUExecutionProvider'
    assert first.level == DiagnosticStatus.WARN and first.message == 'dropped frames: stale 1'
    values = status_values(first)
    assert values['model_path'] == '/m/vd.onnx' and values['model_trained'] == 'True'
    assert values['requested_providers'] == 'CUDAExecutionProvider,CPUExecutionProvider'
    assert values['sync_implementation'] == 'vd_ros.sync'
    assert values['stage_model_p50_ms'] == '12.500' and values['drops.stale'] == '1'
    assert values['received.rgb'] == '30' and values['received.camera_info'] == '31'
    second = status()  # no drop since the last status
    assert second.level == DiagnosticStatus.OK and second.message == '0.0 Hz'
    stats.count_drop('stale')
    assert status().message == 'dropped frames: stale 1'
