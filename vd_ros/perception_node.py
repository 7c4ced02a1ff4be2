"""The vd_ros perception node: synchronized RGB-D in; segmentation, depth, features out.

Thin on purpose: decoding lives in :mod:`vd_ros.image_codec`, pairing in :mod:`vd_ros.sync`,
camera_info in :mod:`vd_ros.camera_info_cache`, parameters in :mod:`vd_ros.live_parameters`,
the model in :mod:`vd_ros.inference`, pre/post-processing in :mod:`vd_ros.core`. The
subscription callbacks only put the newest RGB-depth pair into a one-slot mailbox; a worker
thread decodes it and runs the model, and a second thread post-processes and publishes the
outputs while the first already runs the model on the next pair (:mod:`vd_ros.mailbox_worker`).
A slow stage drops frames (counted as ``stale``) instead of queueing them, and latency stays
bounded.

A lifecycle (managed) node: configure loads and checks the model and creates the publishers,
activate subscribes and starts the workers, deactivate stops the input (the model stays),
cleanup and shutdown free everything. With ``managed:=false`` (the default of the console
script) it runs those transitions itself at start.
"""

import os
import threading
import time
from typing import NamedTuple

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from vd_ros.camera_info_cache import CameraInfoCache
from vd_ros.camera_info_input import CameraInfoInput
from vd_ros.core.contract import ContractError
from vd_ros.core.depth_alignment import align_depth, keep_measured
from vd_ros.core.depth_confidence import camera_confidence, drop_unconfident
from vd_ros.core.intrinsics import depth_to_points, letterbox_intrinsics, scale_intrinsics
from vd_ros.core.postprocess import colorize_labels, feature_pca_rgb, labels_from_logits
from vd_ros.core.preprocess import EmptyDepthError, Letterbox, prepare_inputs
from vd_ros.dds_transport import choose_transport, use_large_image_transport
from vd_ros.diagnostics import diagnostic_status, NodeStatistics, UnsyncedFrameCounter
from vd_ros.image_codec import array_to_image, decode_depth, decode_rgb, ImageEncodingError
from vd_ros.inference import ModelLoadError, VDModel
from vd_ros.input_watch import InputWatch
from vd_ros.live_parameters import combination_error, LiveParameters
from vd_ros.mailbox_worker import MailboxWorker
from vd_ros.messages import camera_info_with, point_cloud_xyzrgb
from vd_ros.model_reload import ModelReload
from vd_ros.replay import qos_profile
from vd_ros.segmentation_labels import (LABELS_TOPIC, publish_segmentation_labels,
                                        segmentation_palette)
from vd_ros.stage_timer import StageTimer
from vd_ros.sync import stamp_nanoseconds, subscribe_synchronized

NODE_NAME = 'vd_perception'
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
# A frame's camera_info may be handled after its images (executor threads run callbacks in any
# order): when the intrinsics changed recently, the worker waits this long for the frame's own.
CAMERA_INFO_WAIT_S = 0.5
CAMERA_INFO_KEPT = 16  # recent camera_info messages kept to match pairs by stamp
# The second stage starts a frame once the first has prepared the next pair (and runs the model,
# which frees the GIL), or after this long when no pair comes: on 2 cores the preparation, on
# the critical path, then no longer competes with the post-processing for the GIL.
OUTPUT_GATE_S = 0.033
SUCCESS = TransitionCallbackReturn.SUCCESS


class FrameDropped(Exception):
    """A frame that cannot be processed; ``cause`` is a ``vd_ros.diagnostics`` drop cause."""

    def __init__(self, cause: str, message: str):
        """Store the drop cause and the human-readable reason."""
        super().__init__(message)
        self.cause = cause


class ModelFrame(NamedTuple):
    """What the second stage needs of a frame besides the model outputs.

    Attributes:
        header: The input header (stamp, frame_id) every output carries.
        rgb: (h, w, 3) uint8 camera image.
        depth: (h, w) measured depth in metres, 0 where invalid.
        info: Its camera_info.
        letterbox: Camera -> model input mapping.
        settings: The parameter values the frame is processed with.
        received: ``time.monotonic()`` when the pair arrived.
        model_s: Duration of the model call.
        first_stage_s: Duration of decode, preparation and model call.
        prepare_cpu_s: CPU time of this frame's thread for decode and preparation.
    """

    header: object
    rgb: np.ndarray
    depth: np.ndarray
    info: CameraInfo
    letterbox: Letterbox
    settings: dict
    received: float
    model_s: float
    first_stage_s: float
    prepare_cpu_s: float


def depth_output(model: VDModel) -> str:
    """Return the model output behind ~/depth: a completion head's metric depth if any."""
    return 'completed_depth' if 'completed_depth' in model.output_names else 'depth'


class PerceptionNode(LifecycleNode):
    """Runs a Vanishing Depth model on synchronized RGB-D frames.

    Attributes:
        parameters: The :class:`LiveParameters` (``parameters.values``: current values).
        settings: The parameter values of the frame being processed (one consistent set).
        model: The :class:`VDModel` (None while unconfigured).
        configure_error: Why the last configure failed (None when it did not).
        stats: Counters and latencies (also on ``/diagnostics``).
        stages: Wall time of every processing stage (``stage_<name>_p50_ms`` on
            ``/diagnostics``): decode, prepare_inputs, model, segmentation,
            segmentation_color, depth (with its part depth_alignment), points, features,
            features_pca, their sum process, and process - model as non_model.
        camera_infos: Recent camera_info messages (:class:`CameraInfoCache`).
        sync_implementation: ``'message_filters'`` or ``'vd_ros.sync'`` (once active).
        last_computed: Model outputs computed for the latest pair (those with subscribers).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        """Declare the parameters; unless ``managed``, configure and activate at once.

        Raises:
            ModelLoadError, ContractError: Missing, corrupt or contract-mismatched model
                (unmanaged only; a managed node's configure fails instead).
            ValueError: Empty ``model_path`` or an invalid parameter combination (same).
            ParameterException: A parameter of the wrong type or out of its range.
        """
        super().__init__(node_name, **kwargs)
        # Set before anything can raise: destroy_node() needs them.
        self._worker = self._output_worker = None
        self._next_prepared = threading.Event()
        self._inputs = []
        self._camera_info_input = self._input_watch = None
        self._outputs = {}
        self._diagnostics = self._diagnostics_timer = None
        self.model = self.configure_error = self.sync_implementation = None
        self.camera_infos = CameraInfoCache(CAMERA_INFO_KEPT)
        try:
            self.parameters = LiveParameters(
                self, ModelReload(lambda: self.model, self._load_model, self._swap_model))
            self.settings = self.parameters.values
            if not self.settings['managed']:
                if self.trigger_configure() != SUCCESS:
                    raise self.configure_error
                self.trigger_activate()
        except BaseException:
            # Free the half-built node now rather than leave it to rclpy's shutdown hooks.
            self.destroy_node()
            raise

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Check the parameters, load and check the model, create the publishers."""
        try:
            self._configure()
        except Exception as error:  # any reason must reach the manager's log, not vanish
            self.configure_error = error
            self.get_logger().error(f'configure failed: {error}')
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.configure_error = None
        return SUCCESS

    def _configure(self) -> None:
        p = self.parameters.values
        if not p['model_path']:
            raise ValueError('parameter model_path is empty: pass the exported ONNX model, '
                             'e.g. --ros-args -p model_path:=models/vd.onnx')
        if combination_error(p):
            raise ValueError(combination_error(p))
        if str(p['sync.use_message_filters']).lower() not in ('auto', 'true', 'false'):
            raise ValueError("sync.use_message_filters must be 'auto', 'true' or 'false', got "
                             f'{p["sync.use_message_filters"]!r}')
        self.model = self._load_model(os.path.expanduser(p['model_path']))
        self.contract = self.model.contract
        self.get_logger().info(
            f'model {self.model.path}: encoder {self.contract.encoder}, input '
            f'{list(self.contract.input_size)}, trained={self.contract.trained}, '
            f'active provider {self.model.active_provider} '
            f'(requested {self.model.requested_providers})')
        if self.model.active_provider != self.model.requested_providers[0]:
            self.get_logger().warning(
                f'{self.model.requested_providers[0]} requested but ONNX Runtime runs on '
                f'{self.model.active_provider}')
        self.stats = NodeStatistics()
        self.stages = StageTimer()
        self.unsynced = UnsyncedFrameCounter(tolerance_s=p['sync.slop'])
        self._pca_basis = None
        self.last_computed = []
        self._last_log = {}
        self._outputs = self._create_output_publishers()
        if 'segmentation' in self._outputs:  # latched: what each label id means
            self._outputs[LABELS_TOPIC] = publish_segmentation_labels(self, self.contract)
        self._palette = segmentation_palette(self.contract)
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._last_drops = {}
        self._diagnostics_timer = self.create_timer(p['diagnostics_period_s'],
                                                    self._publish_diagnostics)

    def _load_model(self, path: str) -> VDModel:
        """Load ``path`` with the node's providers, TensorRT cache and threads."""
        p = self.parameters.values
        return VDModel(path, p['providers'], os.path.expanduser(p['tensorrt_cache_path']),
                       intra_op_threads=p['intra_op_threads'])

    def _swap_model(self, model: VDModel) -> None:
        """Serve the next frames with ``model`` (``ros2 param set model_path``)."""
        self.model, self.contract, self._pca_basis = model, model.contract, None
        self.get_logger().info(f'model swapped: now {model.path} (trained='
                               f'{model.contract.trained}, outputs {list(model.output_names)})')

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the inputs and start the two worker threads."""
        p = self.parameters.values
        use_mf = {'auto': None, 'true': True, 'false': False}[
            str(p['sync.use_message_filters']).lower()]
        qos = qos_profile(p['qos'])
        names = ('rgb', 'depth')
        self.sync_implementation, self._inputs = subscribe_synchronized(
            self, [Image, Image], ['rgb/image_raw', 'depth/image_raw'], qos,
            p['sync.queue_size'], p['sync.slop'], self._on_pair, use_message_filters=use_mf,
            on_message=lambda index: self._count_input(names[index]))
        self._camera_info_input = CameraInfoInput(self, 'rgb/camera_info', qos,
                                                  self._on_camera_info)
        # Per-input counts and the warnings of a transport that loses or never delivers.
        self._input_watch = InputWatch(
            self, {**dict(zip(names, self._inputs)),
                   'camera_info': self._camera_info_input.subscriptions[0]}, 'camera_info',
            qos.reliability == ReliabilityPolicy.RELIABLE,
            choose_transport(os.environ).description)
        # Two stages, each in its own thread (vd_ros.mailbox_worker): the post-processing and
        # publishing of a frame overlap with the model call of the next.
        self._worker = MailboxWorker('vd_ros_worker', self._guarded(self.process))
        self._output_worker = MailboxWorker('vd_ros_outputs', self._guarded(self.publish_outputs))
        self.get_logger().info(f'active: pairing RGB and depth with {self.sync_implementation}')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the input and the workers; the model and the publishers stay."""
        self._stop_input()
        self.get_logger().info('inactive: input stopped, model kept')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free everything configure made."""
        self._release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free everything, from whichever state."""
        self._release()
        return SUCCESS

    def _stop_input(self) -> None:
        """Destroy the input subscriptions, then close and join the workers."""
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self._camera_info_input is not None:
            self._camera_info_input.destroy()
            self._camera_info_input = None
        if self._input_watch is not None:
            self._input_watch.destroy()
        for worker in (self._worker, self._output_worker):
            if worker is not None:
                worker.close()
        self._worker = self._output_worker = None

    def _release(self) -> None:
        """Stop the input, destroy publishers and timer, drop the model and camera_info."""
        self._stop_input()
        for publisher in [*self._outputs.values(), self._diagnostics]:
            if publisher is not None:
                self.destroy_publisher(publisher)
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        self._outputs = {}
        self._diagnostics = self._diagnostics_timer = None
        self.model = None
        self.camera_infos.clear()

    def _create_output_publishers(self) -> dict:
        """Create the publishers of the enabled outputs, keyed by relative topic name."""
        topics = {
            'outputs.segmentation': [('segmentation', Image), ('segmentation/color', Image)],
            'outputs.depth': [('depth', Image), ('depth/camera_info', CameraInfo)],
            'outputs.features': [('features', Image), ('features/camera_info', CameraInfo),
                                 ('features/pca', Image)],
            'outputs.points': [('points', PointCloud2)],
        }
        if 'seg_logits' not in self.model.output_names:
            if self.parameters.values['outputs.segmentation']:
                self.get_logger().warning('the model has no seg_logits output: no segmentation')
            topics.pop('outputs.segmentation')
        if 'descriptors' in self.model.output_names:
            topics['outputs.features'] += [('descriptors', Image),
                                           ('descriptors/camera_info', CameraInfo)]
        elif self.parameters.values['outputs.features']:
            self.get_logger().info('the model has no descriptors output (contract v4): no '
                                   '~/descriptors, ~/features carries the patch tokens only')
        if 'depth_uncertainty' in self.model.output_names:
            topics['outputs.depth'].append(('depth/confidence', Image))
        elif self.parameters.values['outputs.depth']:
            self.get_logger().info('the model has no depth_uncertainty output (contract v3): no '
                                   '~/depth/confidence, depth.min_confidence has no effect')
        return {name: self.create_publisher(msg_type, f'~/{name}', OUTPUT_QOS)
                for key, entries in topics.items() if self.parameters.values[key]
                for name, msg_type in entries}

    def _count_input(self, name: str) -> None:
        watch = self._input_watch  # None until the first activation has created it
        if watch is not None:
            watch.count(name)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._count_input('camera_info')
        self.camera_infos.add(msg)
        for _ in range(self.unsynced.note_frame(stamp_nanoseconds(msg))):
            self._drop('unsynced', 'a camera frame got no RGB-depth pair within the slop '
                       f'({self.parameters.values["sync.slop"]} s); check that both streams '
                       'publish')

    def _on_pair(self, rgb: Image, depth: Image) -> None:
        self.stats.count_pair(
            (self.get_clock().now().nanoseconds - stamp_nanoseconds(rgb)) * 1e-9)
        self.unsynced.note_pair(stamp_nanoseconds(rgb))
        worker = self._worker
        if worker is not None and worker.put((rgb, depth, time.monotonic())):
            self.stats.count_drop('stale')

    def _drop(self, cause: str, message: str) -> None:
        """Count a dropped frame and log it, at most once per cause and throttle period."""
        total = self.stats.count_drop(cause)
        now = time.monotonic()
        if now - self._last_log.get(cause, -np.inf) >= self.parameters.values['log_throttle_s']:
            self._last_log[cause] = now
            self.get_logger().warning(f'dropped frame ({cause}, {total} so far): {message}')

    def _wanted(self, *names) -> bool:
        """Return True when one of the named outputs exists and has a subscriber."""
        return any(name in self._outputs and
                   self._outputs[name].get_subscription_count() > 0 for name in names)

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

    def process(self, rgb_msg: Image, depth_msg: Image, received: float) -> None:
        """First stage: decode one pair and run the model on the outputs somebody subscribes to.

        The outputs go to the second stage (:meth:`publish_outputs`, its own thread).

        Raises:
            FrameDropped: For bad input or a failed model call (counted by the caller).
        """
        model = self.model  # one model for the whole frame, whatever a swap does meanwhile
        depth_wanted = self._wanted('depth', 'depth/camera_info', 'points')
        computed = {'seg_logits': self._wanted('segmentation', 'segmentation/color'),
                    depth_output(model): depth_wanted or self._wanted('depth/confidence'),
                    'depth_uncertainty': 'depth_uncertainty' in model.output_names and (
                        self._wanted('depth/confidence') or
                        depth_wanted and self.parameters.values['depth.min_confidence'] > 0),
                    'features': self._wanted('features', 'features/camera_info',
                                             'features/pca'),
                    'descriptors': 'descriptors' in model.output_names and self._wanted(
                        'descriptors', 'descriptors/camera_info')}
        outputs = [name for name, wanted in computed.items() if wanted]
        self.settings = self.parameters.values  # one consistent set for the whole frame
        self.last_computed = outputs
        try:
            self._infer(model, rgb_msg, depth_msg, received, outputs)
        except BaseException:
            self._next_prepared.set()  # a dropped pair: the second stage need not wait for it
            raise

    def _infer(self, model: VDModel, rgb_msg: Image, depth_msg: Image, received: float,
               outputs: list) -> None:
        """Decode and prepare one pair, run the model, hand the outputs to the second stage."""
        if not outputs:
            self.stats.count_unobserved()
            self._next_prepared.set()
            return
        start, start_cpu = time.perf_counter(), time.thread_time()
        with self.stages.stage('decode'):
            rgb, depth, info = self._decode(rgb_msg, depth_msg)
        try:
            with self.stages.stage('prepare_inputs'):
                rgb_in, pde, letterbox = prepare_inputs(rgb, depth, model.contract)
        except EmptyDepthError as error:
            raise FrameDropped('empty_depth', str(error))
        except ValueError as error:
            raise FrameDropped('size_mismatch', str(error))
        self._next_prepared.set()  # the previous frame's post-processing may start now
        prepare_cpu_s = time.thread_time() - start_cpu
        model_start = time.perf_counter()
        try:
            result = model.run(rgb_in, pde, outputs)
        except Exception as error:  # ORT raises pybind classes with no common base
            raise FrameDropped('model_error', f'{type(error).__name__}: {error}')
        model_s = time.perf_counter() - model_start
        self.stages.record('model', model_s)
        frame = ModelFrame(rgb_msg.header, rgb, depth, info, letterbox, self.settings, received,
                           model_s, time.perf_counter() - start, prepare_cpu_s)
        worker = self._output_worker
        self._next_prepared.clear()
        if worker is not None and worker.hand_over((frame, result)):
            self.stats.count_drop('stale')

    def publish_outputs(self, frame: 'ModelFrame', result: dict) -> None:
        """Second stage: turn the model outputs of one frame into messages and publish them.

        Depth (and points) go out first: it is what a robot acts on (obstacles, grasping), so
        it does not wait for the segmentation overlay.
        """
        self._next_prepared.wait(OUTPUT_GATE_S)
        start, start_cpu = time.perf_counter(), time.thread_time()
        for name in ('completed_depth', 'depth'):
            if name in result:
                uncertainty = result.get('depth_uncertainty')
                self._publish_depth(frame, result[name][0, 0], name == 'completed_depth',
                                    None if uncertainty is None else uncertainty[0, 0])
        if 'seg_logits' in result:
            self._publish_segmentation(frame, result['seg_logits'][0])
        if 'features' in result:
            self._publish_features(frame, result['features'][0])
        if 'descriptors' in result:
            self._publish_descriptors(frame, result['descriptors'][0])
        process_s = frame.first_stage_s + time.perf_counter() - start
        self.stages.record('process', process_s)
        self.stages.record('non_model', process_s - frame.model_s)
        # The CPU time of the same work: the wall time less the waits for a core (other
        # processes) and for the GIL (the executor thread).
        self.stages.record('non_model_cpu',
                           frame.prepare_cpu_s + time.thread_time() - start_cpu)
        self.stats.record_frame(time.monotonic() - frame.received, frame.model_s)

    def _decode(self, rgb_msg: Image, depth_msg: Image) -> tuple:
        """Decode and check one pair; return (rgb, depth in metres, camera_info)."""
        limit = self.settings['max_input_pixels']
        for msg in (rgb_msg, depth_msg):
            if msg.width * msg.height > limit:  # checked before any work on the pixels
                raise FrameDropped('oversized', f'{msg.width}x{msg.height} image: more than '
                                   f'max_input_pixels {limit}; raise it for a larger camera')
        try:
            rgb = decode_rgb(rgb_msg)
            depth = decode_depth(depth_msg)
        except ImageEncodingError as error:
            raise FrameDropped('bad_encoding', str(error))
        if rgb.shape[:2] != depth.shape:
            raise FrameDropped('size_mismatch', f'rgb {rgb.shape[:2]} and depth {depth.shape} '
                               'differ in size; register the depth image to the colour camera')
        low, high = self.settings['depth.min_m'], self.settings['depth.max_m']
        # OpenCV's range mask and masked copy: ~0.4 ms at VGA, numpy's boolean indexing ~1.3.
        depth = cv2.copyTo(depth, cv2.inRange(depth, low, high), np.zeros_like(depth))
        if not depth.any():
            raise FrameDropped('empty_depth', f'no depth pixel in [{low}, {high}] m')
        info = self.camera_infos.lookup(stamp_nanoseconds(rgb_msg),
                                        int(self.settings['sync.slop'] * 1e9), CAMERA_INFO_WAIT_S)
        if info is None:
            raise FrameDropped('camera_info_missing', 'no camera_info received yet on '
                               f'{self.resolve_topic_name("rgb/camera_info")}')
        if (info.height, info.width) != rgb.shape[:2]:
            raise FrameDropped('camera_info_mismatch', f'camera_info is {info.width}x'
                               f'{info.height}, the image {rgb.shape[1]}x{rgb.shape[0]}')
        camera = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        if not np.isfinite(camera).all():
            raise FrameDropped('non_finite', f'camera_info K {list(info.k)} is not finite')
        if camera[0, 0] <= 0 or camera[1, 1] <= 0:
            raise FrameDropped('camera_info_mismatch', f'camera_info K {list(info.k)} has a '
                               'non-positive focal length')
        return rgb, depth, info

    def _publish_segmentation(self, frame: 'ModelFrame', logits) -> None:
        letterbox, header = frame.letterbox, frame.header
        with self.stages.stage('segmentation'):
            labels = labels_from_logits(logits, letterbox)  # (h, w) uint8 or uint16, camera size
            if self._wanted('segmentation'):
                encoding = 'mono8' if labels.dtype == np.uint8 else 'mono16'
                self._outputs['segmentation'].publish(array_to_image(labels, encoding, header))
        if self._wanted('segmentation/color'):
            with self.stages.stage('segmentation_color'):
                overlay = colorize_labels(labels, frame.rgb,
                                          frame.settings['segmentation.alpha'], self._palette)
                self._outputs['segmentation/color'].publish(
                    array_to_image(overlay, 'rgb8', header))

    def _publish_depth(self, frame: 'ModelFrame', predicted, metric: bool,
                       uncertainty=None) -> None:
        settings, header, info = frame.settings, frame.header, frame.info
        with self.stages.stage('depth'):
            restored = frame.letterbox.restore(predicted, 'linear')  # (h, w) metres
            confidence = None if uncertainty is None else camera_confidence(
                uncertainty, predicted, frame.letterbox, frame.depth)
            if metric and settings['depth.alignment'] == 'global':  # metric: as predicted
                completed = keep_measured(restored, frame.depth)
            else:  # local alignment refines a completion head's depth too (docs/results)
                with self.stages.stage('depth_alignment'):
                    completed, _, _ = align_depth(restored, frame.depth,
                                                  settings['depth.fit_shift'],
                                                  settings['depth.alignment'])
            # NaN outside [min, max]; NaN and +-Inf are outside (OpenCV masks, as in _decode).
            inside = cv2.inRange(completed, settings['depth.min_m'], settings['depth.max_m'])
            completed = cv2.copyTo(completed, inside, np.full_like(completed, np.nan))
            if confidence is not None:
                completed = drop_unconfident(completed, confidence,
                                             settings['depth.min_confidence'])
                if self._wanted('depth/confidence'):
                    self._outputs['depth/confidence'].publish(
                        array_to_image(confidence, '32FC1', header))
            if self._wanted('depth', 'depth/camera_info'):
                self._outputs['depth'].publish(array_to_image(completed, '32FC1', header))
                self._outputs['depth/camera_info'].publish(camera_info_with(info, header))
        if self._wanted('points'):
            with self.stages.stage('points'):  # depth_to_points skips the NaN pixels
                points, colours = depth_to_points(completed, info.k, frame.rgb,
                                                  settings['points.stride'])
                self._outputs['points'].publish(point_cloud_xyzrgb(points, colours, header))

    def _publish_features(self, frame: 'ModelFrame', features) -> None:
        letterbox, header, info = frame.letterbox, frame.header, frame.info
        grid = features.shape[1:]
        if self._wanted('features', 'features/camera_info'):
            with self.stages.stage('features'):
                hwc = np.ascontiguousarray(features.transpose(1, 2, 0))  # (h, w, D)
                self._outputs['features'].publish(
                    array_to_image(hwc, f'32FC{hwc.shape[2]}', header))
                patch = 1.0 / self.contract.patch_size
                grid_camera = scale_intrinsics(letterbox_intrinsics(info.k, letterbox), patch,
                                               patch)
                self._outputs['features/camera_info'].publish(
                    camera_info_with(info, header, grid_camera, grid))
        if self._wanted('features/pca'):
            with self.stages.stage('features_pca'):
                # The basis comes from the first frame and is kept: stable colours over time.
                pca, self._pca_basis = feature_pca_rgb(features, self._pca_basis)  # (h, w, 3)
                # One colour per patch: at the model input's resolution nothing is lost, and a
                # camera-sized copy would only cost time (README "Outputs").
                target = letterbox.content if letterbox.scale < 1.0 else letterbox
                self._outputs['features/pca'].publish(
                    array_to_image(target.restore(pca, 'nearest'), 'rgb8', header))

    def _publish_descriptors(self, frame: 'ModelFrame', descriptors) -> None:
        """Publish the dense descriptors (dim, h', w') with the intrinsics of their grid."""
        with self.stages.stage('descriptors'):
            hwc = np.ascontiguousarray(descriptors.transpose(1, 2, 0))  # (h', w', dim)
            self._outputs['descriptors'].publish(
                array_to_image(hwc, f'32FC{hwc.shape[2]}', frame.header))
            height, width = self.contract.input_size
            grid = descriptors.shape[1:]
            grid_camera = scale_intrinsics(letterbox_intrinsics(frame.info.k, frame.letterbox),
                                           grid[1] / width, grid[0] / height)
            self._outputs['descriptors/camera_info'].publish(
                camera_info_with(frame.info, frame.header, grid_camera, grid))

    def _publish_diagnostics(self) -> None:
        snapshot = self.stats.snapshot()
        extra = {'model_path': self.model.path, 'model_trained': self.contract.trained,
                 'active_provider': self.model.active_provider,
                 'requested_providers': ','.join(self.model.requested_providers),
                 'sync_implementation': self.sync_implementation, **self.stages.snapshot()}
        if self._input_watch is not None:  # counts of the latest activation
            extra.update({f'received.{name}': count
                          for name, count in self._input_watch.counts.items()})
        status = diagnostic_status(self.get_fully_qualified_name(), self.model.active_provider,
                                   snapshot, extra, self._last_drops)
        self._last_drops = snapshot['drops']
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diagnostics.publish(array)

    def destroy_node(self) -> None:
        """Free everything (the worker thread first), then destroy the node."""
        self._release()
        super().destroy_node()


def main(args=None):
    """Run the node until Ctrl-C or an external shutdown (the ros2/examples shape)."""
    transport = use_large_image_transport()  # VGA images need it (vd_ros.dds_transport)
    rclpy.init(args=args)
    node = None
    try:
        logger = rclpy.logging.get_logger(NODE_NAME)
        # Built-in transports only (no profile): camera-sized images may be lost, say so loudly.
        (logger.info if transport.profile else logger.warning)(transport.description)
        node = PerceptionNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ModelLoadError, ContractError, ValueError, ParameterException) as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {error}')
        raise SystemExit(1)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
