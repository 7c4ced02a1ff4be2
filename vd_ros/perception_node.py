"""The vd_ros perception node: synchronized RGB-D in; segmentation, depth, features out.

Lifecycle and composition only: parameters in :mod:`vd_ros.live_parameters`, pairing in
:mod:`vd_ros.sync`, camera_info in :mod:`vd_ros.camera_info_cache`, the input checks in
:mod:`vd_ros.frame_check`, the two worker stages in :mod:`vd_ros.pipeline`, the outputs and
their post-processing in :mod:`vd_ros.outputs`, ``/diagnostics`` in :mod:`vd_ros.diagnostics`,
the model in :mod:`vd_ros.inference`. The subscription callbacks only put the newest RGB-depth
pair into a one-slot mailbox; a worker thread decodes it and runs the model, and a second thread
post-processes and publishes the outputs while the first already runs the model on the next
pair. A slow stage drops frames (counted as ``stale``) instead of queueing them, and latency
stays bounded.

A lifecycle (managed) node: configure loads and checks the model and creates the publishers,
activate subscribes and starts the workers, deactivate stops the input (the model stays),
cleanup and shutdown free everything. With ``managed:=false`` (the default of the console
script) it runs those transitions itself at start.
"""

import os
import time

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from vd_ros.camera_info_cache import CameraInfoCache
from vd_ros.camera_info_input import CameraInfoInput
from vd_ros.core.contract import ContractError
from vd_ros.dds_transport import choose_transport, use_large_image_transport
from vd_ros.diagnostics import DropLog, NodeDiagnostics, NodeStatistics, UnsyncedFrameCounter
from vd_ros.frame_check import FrameCheck
from vd_ros.inference import ModelLoadError, VDModel
from vd_ros.input_watch import InputWatch
from vd_ros.live_parameters import combination_error, LiveParameters
from vd_ros.model_reload import ModelReload
from vd_ros.outputs import create_output_publishers, OutputPublisher
from vd_ros.pipeline import Pipeline
from vd_ros.qos import qos_profile
from vd_ros.segmentation_labels import (LABELS_TOPIC, publish_segmentation_labels,
                                        segmentation_palette)
from vd_ros.stage_timer import StageTimer
from vd_ros.sync import stamp_nanoseconds, subscribe_synchronized

NODE_NAME = 'vd_perception'
CAMERA_INFO_KEPT = 16  # recent camera_info messages kept to match pairs by stamp
SUCCESS = TransitionCallbackReturn.SUCCESS


class PerceptionNode(LifecycleNode):
    """Runs a Vanishing Depth model on synchronized RGB-D frames.

    Attributes:
        parameters: The :class:`LiveParameters` (``parameters.values``: current values).
        model: The :class:`VDModel` (None while unconfigured).
        configure_error: Why the last configure failed (None when it did not).
        stats: Counters and latencies (also on ``/diagnostics``).
        stages: Wall time of every processing stage (``stage_<name>_p50_ms`` on
            ``/diagnostics``): decode, prepare_inputs, model, segmentation,
            segmentation_color, depth (with its part depth_alignment), points, features,
            features_pca, their sum process, and process - model as non_model.
        camera_infos: Recent camera_info messages (:class:`CameraInfoCache`).
        sync_implementation: ``'message_filters'`` or ``'vd_ros.sync'`` (once active).
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
        self._pipeline = None
        self._inputs = []
        self._camera_info_input = self._input_watch = None
        self._outputs = {}
        self._diagnostics = self._diagnostics_timer = None
        self.model = self.configure_error = self.sync_implementation = None
        self.camera_infos = CameraInfoCache(CAMERA_INFO_KEPT)
        try:
            self.parameters = LiveParameters(
                self, ModelReload(lambda: self.model, self._load_model, self._swap_model))
            if not self.parameters.values['managed']:
                if self.trigger_configure() != SUCCESS:
                    raise self.configure_error
                self.trigger_activate()
        except BaseException:
            # Free the half-built node now rather than leave it to rclpy's shutdown hooks.
            self.destroy_node()
            raise

    @property
    def last_computed(self) -> list:
        """Return the model outputs computed for the latest pair (those with subscribers)."""
        return [] if self._pipeline is None else self._pipeline.last_computed

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
        self.stats, self.stages = NodeStatistics(), StageTimer()
        self.unsynced = UnsyncedFrameCounter(tolerance_s=p['sync.slop'])
        self._outputs = create_output_publishers(self, self.model.output_names, p)
        if 'segmentation' in self._outputs:  # latched: what each label id means
            self._outputs[LABELS_TOPIC] = publish_segmentation_labels(self, self.contract)
        self._drop = DropLog(self.stats, self.get_logger().warning,
                             lambda: self.parameters.values['log_throttle_s'])
        self._pipeline = Pipeline(
            lambda: self.model, lambda: self.parameters.values,
            FrameCheck(self.camera_infos, self.resolve_topic_name('rgb/camera_info')),
            OutputPublisher(self._outputs, self.stages, segmentation_palette(self.contract),
                            self.contract), self.stats, self.stages, self._drop)
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._status = NodeDiagnostics(self.get_fully_qualified_name())
        self._diagnostics_timer = self.create_timer(p['diagnostics_period_s'],
                                                    self._publish_diagnostics)

    def _load_model(self, path: str) -> VDModel:
        """Load ``path`` with the node's providers, TensorRT cache and threads."""
        p = self.parameters.values
        return VDModel(path, p['providers'], os.path.expanduser(p['tensorrt_cache_path']),
                       intra_op_threads=p['intra_op_threads'], split=p['split_model'],
                       split_descriptors=p['split_descriptor_head'])

    def _swap_model(self, model: VDModel) -> None:
        """Serve the next frames with ``model`` (``ros2 param set model_path``)."""
        self.model, self.contract = model, model.contract
        if self._pipeline is not None:
            self._pipeline.outputs.use_model(model)
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
        # Two stages, each in its own thread (vd_ros.pipeline): the post-processing and
        # publishing of a frame overlap with the model call of the next.
        self._pipeline.start()
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
        if self._pipeline is not None:
            self._pipeline.stop()

    def _release(self) -> None:
        """Stop the input, destroy publishers and timer, drop the model and camera_info."""
        self._stop_input()
        for publisher in [*self._outputs.values(), self._diagnostics]:
            if publisher is not None:
                self.destroy_publisher(publisher)
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        self._outputs.clear()  # the pipeline's too: a frame still in hand publishes nothing
        self._diagnostics = self._diagnostics_timer = self._pipeline = None
        self.model = None
        self.camera_infos.clear()

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
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.put(rgb, depth, time.monotonic())

    def _publish_diagnostics(self) -> None:
        pipeline = self._pipeline
        if pipeline is not None:  # sessions for today's subscribers, built before frames come
            pipeline.prepare()
        watch = self._input_watch  # counts of the latest activation
        self._diagnostics.publish(self._status.array(
            {**self.stats.snapshot(), 'camera_info_borrowed': self.camera_infos.borrowed},
            self.model, self.sync_implementation, self.stages.snapshot(),
            {} if watch is None else watch.counts, self.get_clock().now().to_msg()))

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
