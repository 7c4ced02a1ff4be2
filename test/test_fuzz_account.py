"""bench.fuzz_frames: the fuzz mix's bookkeeping on counters written by hand, and its pacing."""

import time
from types import SimpleNamespace

from bench.fuzz_frames import account, play
import numpy as np
from std_msgs.msg import Header

from vd_ros.diagnostics import DROP_CAUSES
from vd_ros.replay import frame_messages, load_frames

PLAN = ['no_camera_info', 'good', 'info_size', 'good', 'depth_zero', 'good']
STAMPS = list(range(len(PLAN)))


def values(borrowed: int, **drops) -> dict:
    """Diagnostics values of a node that paired every frame and counted ``drops``."""
    counts = dict.fromkeys(DROP_CAUSES, 0)
    counts.update(drops)
    settled = sum(counts.values())
    return {'pairs_received': len(PLAN), 'frames_processed': len(PLAN) - settled,
            'frames_unobserved': 0, 'camera_info_borrowed': borrowed,
            **{f'drops.{cause}': count for cause, count in counts.items()}}


def test_every_frame_counted_under_its_cause_passes():
    drops = {'camera_info_missing': 1, 'camera_info_mismatch': 1, 'empty_depth': 1}
    table, problems = account(PLAN, STAMPS, values(0, **drops), {1, 3, 5})
    assert problems == [] and table['camera_info_mismatch'] == (1, 1)


def test_a_good_frame_dropped_for_another_frames_camera_info_needs_a_borrowed_one():
    # The good frame after 'info_size' lost its own camera_info and met the bad one.
    drops = {'camera_info_missing': 1, 'camera_info_mismatch': 2, 'empty_depth': 1}
    assert account(PLAN, STAMPS, values(1, **drops), {1, 5})[1] == []
    problems = account(PLAN, STAMPS, values(0, **drops), {1, 5})[1]
    assert problems == ["1 frames judged by another frame's camera_info, more than the 0 the "
                        'node gave another one']


def test_a_bad_camera_info_frame_processed_needs_a_borrowed_one():
    drops = {'camera_info_missing': 1, 'empty_depth': 1}
    assert account(PLAN, STAMPS, values(1, **drops), {1, 2, 3, 5})[1] == []
    assert len(account(PLAN, STAMPS, values(0, **drops), {1, 2, 3, 5})[1]) == 1


def test_other_causes_are_never_over_counted():
    drops = {'camera_info_missing': 1, 'camera_info_mismatch': 1, 'empty_depth': 2}
    problems = account(PLAN, STAMPS, values(5, **drops), {1, 3})[1]
    assert problems == ['empty_depth: 2 counted but only 1 such frames sent']


def test_a_sender_that_falls_behind_never_bursts():
    # Frames closer than the node's slop would take each other's camera_info. Here the sender
    # stalls for 60 ms once, just before a stamp (a starved thread on a loaded machine).
    calls = []

    def now():
        calls.append(None)
        if len(calls) == 3:
            time.sleep(0.06)
        return SimpleNamespace(nanoseconds=time.monotonic_ns())

    publisher = SimpleNamespace(publish=lambda message: None)
    frames = SimpleNamespace(rgb=publisher, depth=publisher, info=publisher)
    goods = [frame_messages(frame, Header(frame_id='cam'))
             for frame in load_frames('sample', scale=0.25)]
    _, stamps = play(frames, goods, ['good'] * 6, 15.0, SimpleNamespace(now=now),
                     np.random.default_rng(0), settle=0, cut=False)
    assert min(np.diff(stamps)) >= 10**9 / 15.0 * 0.99, np.diff(stamps)
