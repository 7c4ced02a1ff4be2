"""The node's two worker stages: the model hand-off between them and the timing of a frame.

The subscription callbacks only :meth:`Pipeline.put` the newest RGB-depth pair; the first stage
(:meth:`Pipeline.process`, its own thread) decodes and checks it (``vd_ros.frame_check``),
prepares the inputs and runs the model on the outputs somebody subscribes to, and hands the
outputs over to the second stage (:meth:`Pipeline.publish_outputs`, another thread), which runs
the model's late parts (the heads, ``vd_ros.graph_split``) and post-processes and publishes the
outputs (``vd_ros.outputs``; the descriptors after the depth) while the first already runs the
model on the next pair (:mod:`vd_ros.mailbox_worker`). A slow stage drops frames (counted as
``stale``) instead of queueing them, and latency stays bounded. A pair that fails a check is
counted and logged by cause; a bug in a stage too (``processing_error``): the workers go on.
"""

import threading
import time
from typing import Callable

from vd_ros.core.preprocess import EmptyDepthError, prepare_inputs
from vd_ros.diagnostics import NodeStatistics
from vd_ros.frame_check import FrameDropped
from vd_ros.mailbox_worker import MailboxWorker
from vd_ros.model_parts import StagedOutputs
from vd_ros.outputs import ModelFrame, OutputPublisher
from vd_ros.stage_timer import StageTimer

# When the first stage has the next pair in hand (or waiting), the second stage starts a frame
# once that pair is prepared (the first stage then runs the model, which frees the GIL), or
# after this long: on 2 cores the preparation, on the critical path, then does not compete
# with the post-processing for the GIL. When no pair is there yet it starts at once: waiting
# for the camera's next frame would only add latency.
OUTPUT_GATE_S = 0.033


class Pipeline:
    """The two stages of the node's per-frame work, in two threads while started.

    Attributes:
        outputs: The :class:`OutputPublisher` of the second stage.
        settings: The parameter values of the frame being processed (one consistent set).
        last_computed: Model outputs computed for the latest pair (those with subscribers).
        running: Whether the worker threads run (between :meth:`start` and :meth:`stop`).
    """

    def __init__(self, model: Callable, settings: Callable[[], dict], check: Callable,
                 outputs: OutputPublisher, stats: NodeStatistics, stages: StageTimer,
                 drop: Callable[[str, str], None]):
        """Store what the stages use; no thread runs before :meth:`start`.

        Args:
            model: Returns the running ``VDModel`` (read once per frame: a swap waits for it).
            settings: Returns the current parameter values.
            check: ``check(rgb_msg, depth_msg, settings)`` returns (rgb, depth, camera_info)
                or raises ``FrameDropped`` (``vd_ros.frame_check.FrameCheck``).
            outputs: Publishes a frame's model outputs.
            stats: Counts pairs, drops and frames.
            stages: Times each stage.
            drop: ``drop(cause, message)`` counts and logs a dropped frame
                (``vd_ros.diagnostics.DropLog``).
        """
        self._model, self._settings, self._check = model, settings, check
        self.outputs, self._stats, self._stages, self._drop = outputs, stats, stages, drop
        self.settings = settings()
        self.last_computed = []
        self._next_prepared = threading.Event()
        self._preparing = False  # the first stage decodes or prepares a pair
        self._worker = self._output_worker = None

    @property
    def running(self) -> bool:
        """Return whether the worker threads run."""
        return self._worker is not None

    def start(self) -> None:
        """Start the two worker threads and the build of the sessions every output needs."""
        self.prepare(every_publisher=True)  # the usual case; a subset is built when seen
        self._worker = MailboxWorker('vd_ros_worker', self._guarded(self.process))
        self._output_worker = MailboxWorker('vd_ros_outputs', self._guarded(self.publish_outputs))

    def stop(self) -> None:
        """Close and join the worker threads (each finishes the frame in hand)."""
        for worker in (self._worker, self._output_worker):
            if worker is not None:
                worker.close()
        self._worker = self._output_worker = None

    def prepare(self, every_publisher: bool = False) -> None:
        """Start building the model sessions the outputs subscribed now need (returns at once).

        ``every_publisher``: those of every output topic, subscribed or not.
        """
        model = self._model()
        if model is not None:
            model.prepare(self.outputs.computed(model, self._settings()['depth.min_confidence'],
                                                every_publisher))

    def put(self, rgb_msg, depth_msg, received: float) -> None:
        """Hand a pair to the first stage; a pair it had not taken yet is dropped as stale."""
        worker = self._worker
        if worker is not None and worker.put((rgb_msg, depth_msg, received)):
            self._stats.count_drop('stale')

    def _guarded(self, stage):
        """Return ``stage`` taking one tuple, with drops and bugs counted and logged."""
        def run(item) -> None:
            try:
                stage(*item)
            except FrameDropped as drop:
                self._drop(drop.cause, str(drop))
            except Exception as error:  # a bug must not stop the worker: count, log, go on
                self._drop('processing_error', f'{type(error).__name__}: {error}')
        return run

    def process(self, rgb_msg, depth_msg, received: float) -> None:
        """First stage: decode one pair and run the model on the outputs somebody subscribes to.

        The outputs go to the second stage (:meth:`publish_outputs`, its own thread).

        Raises:
            FrameDropped: For bad input or a failed model call (counted by the caller).
        """
        self._preparing = True
        model = self._model()  # one model for the whole frame, whatever a swap does meanwhile
        outputs = self.outputs.computed(model, self._settings()['depth.min_confidence'])
        self.settings = self._settings()  # one consistent set for the whole frame
        self.last_computed = outputs
        try:
            self._infer(model, rgb_msg, depth_msg, received, outputs)
        except BaseException:
            self._prepared()  # a dropped pair: the second stage need not wait for it
            raise

    def _infer(self, model, rgb_msg, depth_msg, received: float, outputs: list) -> None:
        """Decode and prepare one pair, run the model, hand the outputs to the second stage."""
        if not outputs:
            self._stats.count_unobserved()
            self._prepared()
            return
        start, start_cpu = time.perf_counter(), time.thread_time()
        with self._stages.stage('decode'):
            rgb, depth, info = self._check(rgb_msg, depth_msg, self.settings)
        try:
            with self._stages.stage('prepare_inputs'):
                rgb_in, pde, letterbox = prepare_inputs(rgb, depth, model.contract)
        except EmptyDepthError as error:
            raise FrameDropped('empty_depth', str(error))
        except ValueError as error:
            raise FrameDropped('size_mismatch', str(error))
        self._prepared()  # the previous frame's post-processing may start now
        prepare_cpu_s = time.thread_time() - start_cpu
        try:  # with a head, its part runs in the second stage (vd_ros.graph_split)
            staged = model.run_staged(rgb_in, pde, outputs)
        except Exception as error:  # ORT raises pybind classes with no common base
            raise FrameDropped('model_error', f'{type(error).__name__}: {error}')
        self._stages.record('model', staged.early_s)
        frame = ModelFrame(rgb_msg.header, rgb, depth, info, letterbox, self.settings, received,
                           staged.early_s, time.perf_counter() - start, prepare_cpu_s)
        worker = self._output_worker
        self._next_prepared.clear()
        if worker is not None and worker.hand_over((frame, staged)):
            self._stats.count_drop('stale')

    def _prepared(self) -> None:
        """Let the second stage start its frame: the first has prepared (or dropped) its pair."""
        self._preparing = False
        self._next_prepared.set()

    def publish_outputs(self, frame: ModelFrame, staged: StagedOutputs) -> None:
        """Second stage: run the model's late parts and publish the frame's outputs.

        The completion head runs first and its depth goes out with the early outputs; a
        further head (the descriptors) runs after them (``StagedOutputs.batches``).

        Raises:
            FrameDropped: A late part of the model call failed (counted by the caller).
        """
        worker = self._worker
        if self._preparing or (worker is not None and worker.pending):
            self._next_prepared.wait(OUTPUT_GATE_S)
        start, start_cpu = time.perf_counter(), time.thread_time()
        batches = staged.batches()  # runs the late parts when the call was split
        late_cpu_s = 0.0
        while True:
            before = time.thread_time()
            try:
                result = next(batches, None)
            except Exception as error:  # ORT raises pybind classes with no common base
                raise FrameDropped('model_error', f'{type(error).__name__}: {error}')
            late_cpu_s += time.thread_time() - before
            if result is None:
                break
            self.outputs.publish(frame, result)
        if staged.split:
            self._stages.record('model_late', staged.late_s)
        non_model_s = frame.first_stage_s - frame.model_s + (
            time.perf_counter() - start - staged.late_s)
        model_s = frame.model_s + staged.late_s
        self._stages.record('process', model_s + non_model_s)
        self._stages.record('non_model', non_model_s)
        # The CPU time of the same work: the wall time less the waits for a core (other
        # processes) and for the GIL (the executor thread).
        self._stages.record('non_model_cpu',
                            frame.prepare_cpu_s + time.thread_time() - start_cpu - late_cpu_s)
        self._stats.record_frame(time.monotonic() - frame.received, model_s)
