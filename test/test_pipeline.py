"""vd_ros.pipeline: the two stages in their threads, the hand-off, drops by cause, timings.

The model, the frame check and the output publisher are stand-ins: the tests see what each
stage passes on, and what is counted, without ROS or ONNX Runtime.
"""

import threading
import time
from types import SimpleNamespace

from contract_model import tiny_contract
import numpy as np
import pytest

from vd_ros.diagnostics import NodeStatistics
from vd_ros.frame_check import FrameDropped
from vd_ros.model_parts import LatePart, StagedOutputs
from vd_ros.pipeline import Pipeline
from vd_ros.stage_timer import StageTimer

H, W = 56, 70
SETTINGS = {'depth.min_confidence': 0.0, 'max_input_pixels': H * W}


class Model:
    """Returns the requested outputs in one part; records each call."""

    def __init__(self, error=None):
        self.contract = tiny_contract()
        self.output_names = self.contract.outputs
        self.calls, self.error, self.prepared = [], error, []

    def run_staged(self, rgb_in, pde, outputs):
        self.calls.append((rgb_in.shape, list(outputs)))
        if self.error:
            raise self.error
        return StagedOutputs({name: np.zeros((1, 1, H, W), np.float32) for name in outputs},
                             1e-6)

    def prepare(self, outputs):
        self.prepared.append(list(outputs))


class LateSession:
    """The session of a split call's late part: records the thread it runs in and when."""

    def __init__(self, error=None, log=None):
        self.threads, self.error, self.log = [], error, log

    def run(self, names, feeds):
        self.threads.append(threading.current_thread().name)
        if self.log is not None:
            self.log.append(('run', tuple(names)))
        if self.error:
            raise self.error
        return [feeds['cut'] + 1.0 for _ in names]


class SplitModel(Model):
    """Computes 'completed_depth' and 'descriptors' in late parts (``vd_ros.graph_split``)."""

    def __init__(self, late, descriptors_late=None):
        super().__init__()
        self.late, self.descriptors_late = late, descriptors_late

    def run_staged(self, rgb_in, pde, outputs):
        heads = [('completed_depth', self.late), ('descriptors', self.descriptors_late)]
        early = super().run_staged(rgb_in, pde, [name for name in outputs
                                                 if name not in dict(heads)])
        cut = np.zeros((1, 1, H, W), np.float32)
        lates = [LatePart(session, ['cut'], [name]) for name, session in heads
                 if name in outputs]
        return StagedOutputs(early.early, 1e-6, lates, {'cut': cut})


class Outputs:
    """Computes ``wanted``; records (frame, result) of each publish."""

    def __init__(self, wanted=('depth',), error=None):
        self.wanted, self.error = list(wanted), error
        self.published = []

    def computed(self, model, min_confidence, every_publisher=False):
        return ['every'] if every_publisher else self.wanted

    def publish(self, frame, result):
        if self.error:
            raise self.error
        self.published.append((frame, result))


def good_check(rgb_msg, depth_msg, settings):
    return (np.full((H, W, 3), 80, np.uint8), np.full((H, W), 2.0, np.float32),
            SimpleNamespace(k=[1.0] * 9))


def pipeline(model=None, outputs=None, check=good_check):
    drops = []
    stats = NodeStatistics()
    part = Pipeline(lambda: model or Model(), lambda: SETTINGS, check, outputs or Outputs(),
                    stats, StageTimer(), lambda cause, message: drops.append((cause, message)))
    return part, stats, drops


def msg(stamp: int):
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp))


def wait(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.005)


def test_a_pair_goes_through_both_threads_and_its_outputs_are_published_with_its_header():
    model, outputs = Model(), Outputs(('depth', 'features'))
    part, stats, drops = pipeline(model, outputs)
    part.start()
    try:
        assert part.running
        part.put(msg(7), msg(7), time.monotonic())
        wait(lambda: stats.snapshot()['frames_processed'] == 1)
    finally:
        part.stop()
    assert not part.running and drops == []
    frame, result = outputs.published[0]
    assert frame.header.stamp == 7 and frame.settings == SETTINGS
    assert sorted(result) == ['depth', 'features'] and part.last_computed == ['depth', 'features']
    assert model.calls == [((1, 3, H, W), ['depth', 'features'])]
    assert 0 < frame.model_s <= frame.first_stage_s
    stages = {key.rsplit('_p', 1)[0] for key in part._stages.snapshot()}
    assert stages == {'stage_decode', 'stage_prepare_inputs', 'stage_model', 'stage_process',
                      'stage_non_model', 'stage_non_model_cpu'}


def test_a_split_call_runs_its_late_part_in_the_second_stage_and_times_it():
    late, outputs = LateSession(), Outputs(('depth', 'completed_depth'))
    part, stats, drops = pipeline(SplitModel(late), outputs)
    part.start()
    try:
        part.put(msg(3), msg(3), time.monotonic())
        wait(lambda: stats.snapshot()['frames_processed'] == 1)
    finally:
        part.stop()
    assert drops == [] and late.threads == ['vd_ros_outputs']
    frame, result = outputs.published[0]
    assert sorted(result) == ['completed_depth', 'depth']
    np.testing.assert_array_equal(result['completed_depth'], np.ones((1, 1, H, W)))
    assert 'stage_model_late_p50_ms' in part._stages.snapshot()


def test_the_descriptor_head_runs_after_the_depth_and_the_early_outputs_are_published():
    log = []
    late, descriptors = LateSession(log=log), LateSession(log=log)
    outputs = Outputs(('depth', 'completed_depth', 'descriptors'))
    outputs.publish = lambda frame, result: log.append(('publish', tuple(sorted(result))))
    part, stats, drops = pipeline(SplitModel(late, descriptors), outputs)
    part.start()
    try:
        part.put(msg(5), msg(5), time.monotonic())
        wait(lambda: stats.snapshot()['frames_processed'] == 1)
    finally:
        part.stop()
    assert drops == [] and descriptors.threads == ['vd_ros_outputs']
    assert log == [('run', ('completed_depth',)), ('publish', ('completed_depth', 'depth')),
                   ('run', ('descriptors',)), ('publish', ('descriptors',))]


def test_a_failed_late_part_is_a_model_error_drop_and_the_worker_goes_on():
    late = LateSession(RuntimeError('late ORT failed'))
    outputs = Outputs(('completed_depth',))
    part, stats, drops = pipeline(SplitModel(late), outputs)
    part.start()
    try:
        part.put(msg(1), msg(1), time.monotonic())
        wait(lambda: len(drops) == 1)
        late.error = None
        part.put(msg(2), msg(2), time.monotonic())
        wait(lambda: stats.snapshot()['frames_processed'] == 1)
    finally:
        part.stop()
    assert drops == [('model_error', 'RuntimeError: late ORT failed')]
    assert [frame.header.stamp for frame, _ in outputs.published] == [2]


def test_prepare_asks_the_model_for_the_sessions_of_the_subscribed_outputs():
    model = Model()
    part, _, _ = pipeline(model, Outputs(('depth', 'features')))
    part.start()  # the sessions of every output topic, before any subscriber
    part.stop()
    part.prepare()
    assert model.prepared == [['every'], ['depth', 'features']]


def test_without_a_subscriber_the_model_does_not_run_and_the_pair_is_unobserved():
    model = Model()
    part, stats, drops = pipeline(model, Outputs(()))
    part.process(msg(1), msg(1), 0.0)
    assert model.calls == [] and stats.snapshot()['frames_unobserved'] == 1 and not drops


@pytest.mark.parametrize('check, model, cause, text', [
    (lambda *_: (_ for _ in ()).throw(FrameDropped('oversized', 'too big')), Model(),
     'oversized', 'too big'),
    (lambda *_: (np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.float32), None), Model(),
     'empty_depth', 'has no valid (finite, > 0) pixel'),
    (lambda *_: (np.zeros((H, W, 3), np.uint8), np.ones((H, W - 1), np.float32), None),
     Model(), 'size_mismatch', 'differ in size'),
    (good_check, Model(RuntimeError('ORT failed')), 'model_error', 'RuntimeError: ORT failed'),
])
def test_a_bad_pair_or_a_failed_model_call_is_a_drop_with_its_cause(check, model, cause, text):
    part, stats, drops = pipeline(model, check=check)
    part._guarded(part.process)((msg(1), msg(1), 0.0))
    assert [c for c, _ in drops] == [cause] and text.lower() in drops[0][1].lower()
    assert stats.snapshot()['frames_processed'] == 0


def test_a_bug_while_publishing_is_a_processing_error_and_the_worker_goes_on():
    outputs = Outputs(error=KeyError('depth'))
    part, stats, drops = pipeline(outputs=outputs)
    part.start()
    try:
        part.put(msg(1), msg(1), time.monotonic())
        wait(lambda: len(drops) == 1)
        outputs.error = None
        part.put(msg(2), msg(2), time.monotonic())
        wait(lambda: stats.snapshot()['frames_processed'] == 1)
    finally:
        part.stop()
    assert drops == [('processing_error', "KeyError: 'depth'")]
    assert outputs.published[0][0].header.stamp == 2


def test_a_pair_the_first_stage_has_not_taken_is_replaced_and_counted_stale():
    entered, release = threading.Event(), threading.Event()

    def slow_check(*args):
        entered.set()
        release.wait(10.0)
        return good_check(*args)

    outputs = Outputs()
    part, stats, drops = pipeline(outputs=outputs, check=slow_check)
    part.start()
    try:
        part.put(msg(1), msg(1), time.monotonic())
        assert entered.wait(10.0)  # pair 1 in hand
        part.put(msg(2), msg(2), time.monotonic())  # waits in the mailbox
        part.put(msg(3), msg(3), time.monotonic())  # replaces pair 2
        release.set()
        wait(lambda: stats.snapshot()['frames_processed'] == 2)
    finally:
        part.stop()
    assert stats.snapshot()['drops']['stale'] == 1
    assert [frame.header.stamp for frame, _ in outputs.published] == [1, 3]
    part.put(msg(4), msg(4), time.monotonic())  # stopped: nothing is taken or counted
    assert stats.snapshot()['pairs_received'] == 0 and stats.snapshot()['drops']['stale'] == 1


def test_the_second_stage_waits_for_the_next_pair_only_when_the_first_stage_has_one():
    outputs = Outputs(('depth',))
    part, _, _ = pipeline(outputs=outputs)
    waits = []
    part._next_prepared = SimpleNamespace(wait=waits.append, set=lambda: None,
                                          clear=lambda: None)
    frame = SimpleNamespace(model_s=0.01, first_stage_s=0.02, prepare_cpu_s=0.0, received=0.0)
    staged = StagedOutputs({'depth': np.zeros((1, 1, H, W), np.float32)}, 0.01)
    part.publish_outputs(frame, staged)  # the first stage is idle: no pair to wait for
    assert waits == [] and len(outputs.published) == 1
    part._preparing = True  # the first stage decodes the next pair: let it prepare first
    part.publish_outputs(frame, staged)
    part._preparing, part._worker = False, SimpleNamespace(pending=True)  # a pair waits for it
    part.publish_outputs(frame, staged)
    assert len(waits) == 2 and len(outputs.published) == 3
