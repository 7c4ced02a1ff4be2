"""Per-stage timing of the node's worker: percentiles, rolling window, timing on errors."""

import time

import pytest

from vd_ros.stage_timer import StageTimer


def test_percentiles_per_stage_in_first_seen_order():
    timer = StageTimer()
    for ms in range(1, 101):  # 1..100 ms
        timer.record('model', ms / 1e3)
    timer.record('decode', 0.004)
    snapshot = timer.snapshot()
    assert list(snapshot) == ['stage_model_p50_ms', 'stage_model_p99_ms',
                              'stage_decode_p50_ms', 'stage_decode_p99_ms']
    assert snapshot['stage_model_p50_ms'] == pytest.approx(50.5)
    assert snapshot['stage_model_p99_ms'] == pytest.approx(99.01)
    assert snapshot['stage_decode_p50_ms'] == pytest.approx(4.0)


def test_window_keeps_only_recent_durations():
    timer = StageTimer(window=3)
    for seconds in (10.0, 0.001, 0.002, 0.003):
        timer.record('depth', seconds)
    assert timer.snapshot()['stage_depth_p99_ms'] == pytest.approx(2.98)
    with pytest.raises(ValueError, match='0'):
        StageTimer(window=0)


def test_stage_context_times_the_block_even_when_it_raises():
    timer = StageTimer()
    with timer.stage('sleep'):
        time.sleep(0.02)
    with pytest.raises(RuntimeError):
        with timer.stage('failing'):
            raise RuntimeError('boom')
    snapshot = timer.snapshot()
    assert 15.0 <= snapshot['stage_sleep_p50_ms'] < 1000.0
    assert 0.0 <= snapshot['stage_failing_p50_ms'] < 15.0
