"""The node's outputs: which topics exist, which model outputs to compute, and their publishing.

Configure creates a publisher for every output the parameters enable and the model can feed
(:func:`output_topics`). Per frame, only the model outputs behind a topic with a subscriber are
computed (:meth:`OutputPublisher.computed`), and the second stage turns them into messages
(:meth:`OutputPublisher.publish`): depth (with its confidence and points) first, then the
segmentation, then the features and descriptors, each post-processing step timed as a
``StageTimer`` stage.
"""

from typing import NamedTuple

import cv2
import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from vd_ros.core.depth_alignment import align_depth, keep_measured
from vd_ros.core.depth_confidence import camera_confidence, drop_unconfident
from vd_ros.core.intrinsics import depth_to_points, letterbox_intrinsics, scale_intrinsics
from vd_ros.core.postprocess import colorize_labels, feature_pca_rgb, labels_from_logits
from vd_ros.core.preprocess import Letterbox
from vd_ros.image_codec import array_to_image
from vd_ros.messages import camera_info_with, point_cloud_xyzrgb
from vd_ros.stage_timer import StageTimer

OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
# outputs.* parameter -> the topics it enables (relative to the node) and their message types.
TOPICS = {
    'outputs.segmentation': [('segmentation', Image), ('segmentation/color', Image)],
    'outputs.depth': [('depth', Image), ('depth/camera_info', CameraInfo)],
    'outputs.features': [('features', Image), ('features/camera_info', CameraInfo),
                         ('features/pca', Image)],
    'outputs.points': [('points', PointCloud2)],
}


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
        model_s: Duration of the model call in the first stage (its early part when split).
        first_stage_s: Duration of decode, preparation and that model call.
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


def depth_output(model) -> str:
    """Return the model output behind ~/depth: a completion head's metric depth if any."""
    return 'completed_depth' if 'completed_depth' in model.output_names else 'depth'


def output_topics(output_names, values: dict) -> tuple:
    """Return the topics to publish and what to log about the ones the model cannot feed.

    Args:
        output_names: The model's output names.
        values: The parameter values (``outputs.*``).

    Returns:
        ([(relative topic, message type)], [(log level name, message)]).
    """
    topics = {key: list(entries) for key, entries in TOPICS.items()}
    notes = []
    if 'seg_logits' not in output_names:
        if values['outputs.segmentation']:
            notes.append(('warning', 'the model has no seg_logits output: no segmentation'))
        topics.pop('outputs.segmentation')
    if 'descriptors' in output_names:
        topics['outputs.features'] += [('descriptors', Image),
                                       ('descriptors/camera_info', CameraInfo),
                                       ('descriptors/pca', Image)]
    elif values['outputs.features']:
        notes.append(('info', 'the model has no descriptors output (contract v4): no '
                      '~/descriptors, ~/features carries the patch tokens only'))
    if 'depth_uncertainty' in output_names:
        topics['outputs.depth'].append(('depth/confidence', Image))
    elif values['outputs.depth']:
        notes.append(('info', 'the model has no depth_uncertainty output (contract v3): no '
                      '~/depth/confidence, depth.min_confidence has no effect'))
    return [entry for key, entries in topics.items() if values[key] for entry in entries], notes


def create_output_publishers(node, output_names, values: dict) -> dict:
    """Create the publishers of :func:`output_topics` on ``node``, keyed by relative topic."""
    topics, notes = output_topics(output_names, values)
    logger = node.get_logger()
    for level, message in notes:  # one call site per severity: rclpy refuses a change
        if level == 'warning':
            logger.warning(message)
        else:
            logger.info(message)
    return {name: node.create_publisher(msg_type, f'~/{name}', OUTPUT_QOS)
            for name, msg_type in topics}


def grid_info(frame: ModelFrame, grid, scale_x: float, scale_y: float) -> CameraInfo:
    """Return the camera_info of a (h', w') grid over the letterboxed model input.

    ``scale_x`` / ``scale_y``: grid cells per model-input pixel; a cell centre then
    back-projects like a pixel of that small camera (features, descriptors).
    """
    grid_camera = scale_intrinsics(letterbox_intrinsics(frame.info.k, frame.letterbox),
                                   scale_x, scale_y)
    return camera_info_with(frame.info, frame.header, grid_camera, grid)


class OutputPublisher:
    """Turns the model outputs of a frame into messages on the publishers that have readers.

    Attributes:
        stages: Where the post-processing stages are timed.
        contract: The running model's contract (its patch size).
    """

    def __init__(self, publishers: dict, stages: StageTimer, palette: np.ndarray, contract):
        """Store the publishers, the stage timer and the label colours.

        Args:
            publishers: Relative topic -> publisher (:func:`create_output_publishers`).
            stages: Where the post-processing stages are timed.
            palette: (N, 3) uint8 colour of each label id.
            contract: The model's ``ModelContract``.
        """
        self._outputs, self.stages, self._palette = publishers, stages, palette
        self.contract, self._pca_bases = contract, {}

    def use_model(self, model) -> None:
        """Serve the frames of a swapped-in model: its contract, new PCA bases."""
        self.contract, self._pca_bases = model.contract, {}

    def _wanted(self, *names) -> bool:
        """Return True when one of the named outputs exists and has a subscriber."""
        return any(name in self._outputs and
                   self._outputs[name].get_subscription_count() > 0 for name in names)

    def computed(self, model, min_confidence: float, every_publisher: bool = False) -> list:
        """Return the outputs of ``model`` to compute: those behind a subscribed topic.

        ``every_publisher``: as if every output topic had a subscriber (the node's full set).
        """
        def wanted(*names) -> bool:
            if every_publisher:
                return any(name in self._outputs for name in names)
            return self._wanted(*names)

        depth_wanted = wanted('depth', 'depth/camera_info', 'points')
        computed = {'seg_logits': wanted('segmentation', 'segmentation/color'),
                    depth_output(model): depth_wanted or wanted('depth/confidence'),
                    'depth_uncertainty': 'depth_uncertainty' in model.output_names and (
                        wanted('depth/confidence') or depth_wanted and min_confidence > 0),
                    'features': wanted('features', 'features/camera_info', 'features/pca'),
                    'descriptors': 'descriptors' in model.output_names and wanted(
                        'descriptors', 'descriptors/camera_info', 'descriptors/pca')}
        return [name for name, value in computed.items() if value]

    def publish(self, frame: ModelFrame, result: dict) -> None:
        """Publish the outputs of one frame's model ``result`` (name -> batch of one).

        Depth (and points) go out first: it is what a robot acts on (obstacles, grasping), so
        it does not wait for the segmentation overlay.
        """
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
            # NaN outside [min, max]; NaN and +-Inf are outside (OpenCV masks, as in frame_check).
            inside = cv2.inRange(completed, settings['depth.min_m'], settings['depth.max_m'])
            completed = cv2.copyTo(completed, inside, np.full_like(completed, np.nan))
            if confidence is not None:
                completed = drop_unconfident(completed, confidence,
                                             settings['depth.min_confidence'])
            if self._wanted('depth', 'depth/camera_info'):
                self._outputs['depth'].publish(array_to_image(completed, '32FC1', header))
                self._outputs['depth/camera_info'].publish(camera_info_with(info, header))
            if confidence is not None and self._wanted('depth/confidence'):  # after the depth
                self._outputs['depth/confidence'].publish(
                    array_to_image(confidence, '32FC1', header))
        if self._wanted('points'):
            with self.stages.stage('points'):  # depth_to_points skips the NaN pixels
                points, colours = depth_to_points(completed, info.k, frame.rgb,
                                                  settings['points.stride'])
                self._outputs['points'].publish(point_cloud_xyzrgb(points, colours, header))

    def _publish_features(self, frame: 'ModelFrame', features) -> None:
        header = frame.header
        grid = features.shape[1:]
        if self._wanted('features', 'features/camera_info'):
            with self.stages.stage('features'):
                hwc = np.ascontiguousarray(features.transpose(1, 2, 0))  # (h, w, D)
                self._outputs['features'].publish(
                    array_to_image(hwc, f'32FC{hwc.shape[2]}', header))
                patch = 1.0 / self.contract.patch_size
                self._outputs['features/camera_info'].publish(
                    grid_info(frame, grid, patch, patch))
        self._publish_pca(frame, 'features/pca', features)

    def _publish_pca(self, frame: 'ModelFrame', topic: str, grid) -> None:
        """Publish a (D, h', w') grid's 3-component PCA as rgb8 on ``topic``, if subscribed."""
        if not self._wanted(topic):
            return
        with self.stages.stage(topic.replace('/', '_')):
            # The basis comes from the first frame and is kept: stable colours over time.
            pca, self._pca_bases[topic] = feature_pca_rgb(grid, self._pca_bases.get(topic))
            # One colour per cell: at the model input's resolution nothing is lost, and a
            # camera-sized copy would only cost time (README "Outputs").
            letterbox = frame.letterbox
            target = letterbox.content if letterbox.scale < 1.0 else letterbox
            self._outputs[topic].publish(
                array_to_image(target.restore(pca, 'nearest'), 'rgb8', frame.header))

    def _publish_descriptors(self, frame: 'ModelFrame', descriptors) -> None:
        """Publish the dense descriptors (dim, h', w') with the intrinsics of their grid."""
        self._publish_pca(frame, 'descriptors/pca', descriptors)
        if not self._wanted('descriptors', 'descriptors/camera_info'):
            return
        with self.stages.stage('descriptors'):
            hwc = np.ascontiguousarray(descriptors.transpose(1, 2, 0))  # (h', w', dim)
            self._outputs['descriptors'].publish(
                array_to_image(hwc, f'32FC{hwc.shape[2]}', frame.header))
            height, width = self.contract.input_size
            grid = descriptors.shape[1:]
            self._outputs['descriptors/camera_info'].publish(
                grid_info(frame, grid, grid[1] / width, grid[0] / height))
