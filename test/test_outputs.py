"""vd_ros.outputs: which topics exist, which model outputs are computed, what is published.

Publishers are stand-ins that record what they are given, in order; the model-grid outputs are
hand-made on a camera the size of the model input (no resize), so every published value is
known from the documented rules (module docstrings of vd_ros.outputs and
vd_ros.core.depth_confidence).
"""

from types import SimpleNamespace

from contract_model import tiny_contract
import numpy as np
import rclpy.logging
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from vd_ros.core.preprocess import Letterbox
from vd_ros.image_codec import image_to_array
from vd_ros.outputs import (create_output_publishers, ModelFrame, output_topics,
                            OutputPublisher)
from vd_ros.segmentation_labels import segmentation_palette
from vd_ros.stage_timer import StageTimer

H, W, PATCH = 56, 70, 14
VALUES = {'outputs.segmentation': True, 'outputs.depth': True, 'outputs.features': True,
          'outputs.points': False}
SETTINGS = {'depth.alignment': 'global', 'depth.fit_shift': False, 'depth.min_m': 0.1,
            'depth.max_m': 10.0, 'depth.min_confidence': 0.0, 'points.stride': 1,
            'segmentation.alpha': 0.5}
ALL_TOPICS = ('segmentation', 'segmentation/color', 'depth', 'depth/camera_info',
              'depth/confidence', 'features', 'features/camera_info', 'features/pca', 'points',
              'descriptors', 'descriptors/camera_info', 'descriptors/pca')


class Publisher:
    """Records (topic, message) in a shared list; ``subscribers`` readers."""

    def __init__(self, sent: list, topic: str, subscribers: int):
        self.sent, self.topic, self.subscribers = sent, topic, subscribers

    def get_subscription_count(self) -> int:
        return self.subscribers

    def publish(self, msg) -> None:
        self.sent.append((self.topic, msg))


def model(**outputs):
    """Return a stand-in model of the tiny contract with the given optional outputs."""
    contract = tiny_contract(**outputs)
    return SimpleNamespace(output_names=contract.outputs, contract=contract)


def publisher(subscribed, sent=None, contract=None, stages=None):
    """Return an OutputPublisher over every topic; those in ``subscribed`` have a reader."""
    sent = [] if sent is None else sent
    contract = contract or tiny_contract()
    publishers = {topic: Publisher(sent, topic, int(topic in subscribed)) for topic in ALL_TOPICS}
    return OutputPublisher(publishers, stages or StageTimer(), segmentation_palette(contract),
                           contract)


def frame(measured: np.ndarray, settings=SETTINGS) -> ModelFrame:
    header = Header(frame_id='cam')
    header.stamp.sec = 42
    info = CameraInfo(height=H, width=W)
    info.k = [50.0, 0.0, 35.0, 0.0, 50.0, 28.0, 0.0, 0.0, 1.0]
    rgb = np.full((H, W, 3), 100, np.uint8)
    letterbox = Letterbox(scale=1.0, pad_top=0, pad_left=0, in_size=(H, W), out_size=(H, W))
    return ModelFrame(header, rgb, measured.astype(np.float32), info, letterbox,
                      {**SETTINGS, **settings}, 0.0, 0.01, 0.02, 0.005)


def test_topics_follow_the_parameters_and_what_the_model_can_feed():
    topics, notes = output_topics(model().output_names, VALUES)
    assert [name for name, _ in topics] == [
        'segmentation', 'segmentation/color', 'depth', 'depth/camera_info', 'features',
        'features/camera_info', 'features/pca']
    assert dict(topics)['depth/camera_info'] is CameraInfo and dict(topics)['depth'] is Image
    no_descriptors = ('info', 'the model has no descriptors output (contract v4): no '
                      '~/descriptors, ~/features carries the patch tokens only')
    assert notes == [no_descriptors,
                     ('info', 'the model has no depth_uncertainty output (contract v3): no '
                      '~/depth/confidence, depth.min_confidence has no effect')]
    outputs = model(completed_depth=True, depth_uncertainty=True).output_names + ('descriptors',)
    topics, notes = output_topics(outputs, {**VALUES, 'outputs.points': True})
    names = [name for name, _ in topics]
    assert names[2:5] == ['depth', 'depth/camera_info', 'depth/confidence'] and not notes
    assert names[5:11] == ['features', 'features/camera_info', 'features/pca', 'descriptors',
                           'descriptors/camera_info', 'descriptors/pca']
    assert topics[-1] == ('points', PointCloud2)
    no_segmentation = ('features', 'depth')
    topics, notes = output_topics(no_segmentation, {**VALUES, 'outputs.depth': False})
    assert [name for name, _ in topics] == ['features', 'features/camera_info', 'features/pca']
    assert notes == [('warning', 'the model has no seg_logits output: no segmentation'),
                     no_descriptors]
    _, notes = output_topics(no_segmentation, {**VALUES, 'outputs.segmentation': False,
                                               'outputs.depth': False,
                                               'outputs.features': False})
    assert notes == []


def test_publishers_are_created_and_both_notes_logged_through_an_rclpy_logger():
    # rclpy refuses one call site logging at two severities ('Logger severity cannot be
    # changed between calls'): a model without seg_logits and depth_uncertainty has both notes.
    created, logger = [], rclpy.logging.get_logger('test_outputs')  # one, as a node's
    node = SimpleNamespace(
        get_logger=lambda: logger,
        create_publisher=lambda msg_type, topic, qos: created.append((topic, qos.depth)) or topic)
    publishers = create_output_publishers(node, ('features', 'completed_depth'), VALUES)
    assert publishers == {name: f'~/{name}' for name in (
        'depth', 'depth/camera_info', 'features', 'features/camera_info', 'features/pca')}
    assert all(depth == 2 for _, depth in created)


def test_only_the_outputs_behind_a_subscribed_topic_are_computed():
    plain, completion = model(), model(completed_depth=True)
    uncertain = model(completed_depth=True, depth_uncertainty=True)
    assert publisher(()).computed(plain, 0.0) == []
    assert publisher(('depth',)).computed(plain, 0.0) == ['depth']
    assert publisher(('points',)).computed(completion, 0.0) == ['completed_depth']
    assert publisher(('segmentation/color', 'features/pca')).computed(plain, 0.0) == [
        'seg_logits', 'features']
    assert publisher(('depth',)).computed(uncertain, 0.0) == ['completed_depth']
    assert publisher(('depth',)).computed(uncertain, 0.5) == [
        'completed_depth', 'depth_uncertainty']
    assert publisher(('depth/confidence',)).computed(uncertain, 0.0) == [
        'completed_depth', 'depth_uncertainty']
    # A topic the node does not publish (the model lacks the output) computes nothing.
    assert publisher(('depth/confidence',)).computed(plain, 0.5) == ['depth']
    # Every publisher as if subscribed: the set the node builds its sessions for at the start.
    assert publisher(()).computed(uncertain, 0.0, every_publisher=True) == [
        'seg_logits', 'completed_depth', 'depth_uncertainty', 'features']


def test_depth_goes_out_first_measured_kept_predicted_elsewhere_nan_out_of_range():
    sent, stages = [], StageTimer()
    out = publisher(('depth', 'depth/camera_info', 'segmentation'), sent, stages=stages)
    measured = np.zeros((H, W))
    measured[:, :10] = 1.25
    predicted = np.full((H, W), 3.0, np.float32)
    predicted[0, 20] = 20.0  # beyond depth.max_m
    logits = np.zeros((1, 3, H, W), np.float32)
    logits[0, 2, :, 35:] = 1.0  # label 2 on the right half, 0 on the left
    out.publish(frame(measured), {'seg_logits': logits,
                                  'completed_depth': predicted[None, None]})
    assert [topic for topic, _ in sent] == ['depth', 'depth/camera_info', 'segmentation']
    assert all(msg.header.stamp.sec == 42 and msg.header.frame_id == 'cam' for _, msg in sent)
    depth = image_to_array(sent[0][1])
    np.testing.assert_array_equal(depth[:, :10], np.float32(1.25))
    assert np.isnan(depth[0, 20])
    rest = np.ones((H, W), bool)
    rest[:, :10] = rest[0, 20] = False
    np.testing.assert_array_equal(depth[rest], 3.0)
    labels = image_to_array(sent[2][1])
    assert sent[2][1].encoding == 'mono8'
    assert (labels[:, :35] == 0).all() and (labels[:, 35:] == 2).all()
    # global alignment keeps a completion head's metric depth: no alignment stage ran
    assert {key.rsplit('_p', 1)[0] for key in stages.snapshot()} == {
        'stage_depth', 'stage_segmentation'}


def test_confidence_is_published_and_pixels_below_the_threshold_are_dropped_everywhere():
    sent = []
    out = publisher(('depth', 'depth/confidence', 'points'), sent,
                    contract=tiny_contract(completed_depth=True, depth_uncertainty=True))
    measured = np.zeros((H, W))
    measured[0, 0] = 1.5
    predicted = np.full((1, 1, H, W), 2.0, np.float32)
    uncertainty = np.empty_like(predicted)
    uncertainty[..., :35] = 0.1 * 2.0  # 10 % of the depth: confidence exp(-0.1)
    uncertainty[..., 35:] = 2.0 * 2.0  # twice the depth: exp(-2)
    out.publish(frame(measured, {'depth.min_confidence': 0.5}),
                {'completed_depth': predicted, 'depth_uncertainty': uncertainty})
    topics = [topic for topic, _ in sent]
    assert topics == ['depth', 'depth/camera_info', 'depth/confidence', 'points']  # depth first
    confidence = image_to_array(sent[2][1])
    assert confidence[0, 0] == 1.0  # measured
    np.testing.assert_allclose(confidence[1:, :35], np.exp(-0.1), rtol=1e-5)
    np.testing.assert_allclose(confidence[:, 36:], np.exp(-2.0), rtol=1e-5)
    depth = image_to_array(sent[0][1])
    assert depth[0, 0] == 1.5 and np.isnan(depth[:, 36:]).all()
    np.testing.assert_array_equal(depth[1:, :35], 2.0)
    cloud = sent[3][1]
    assert cloud.width * cloud.height == np.isfinite(depth).sum()  # stride 1


def test_features_grid_camera_and_a_pca_basis_kept_until_the_model_changes():
    sent = []
    out = publisher(('features', 'features/camera_info', 'features/pca'), sent)
    first, second = (np.random.default_rng(seed).normal(size=(1, 6, H // PATCH, W // PATCH))
                     .astype(np.float32) for seed in (0, 1))
    out.publish(frame(np.ones((H, W))), {'features': first})
    features, grid_info, _ = (msg for _, msg in sent)
    assert features.encoding == '32FC6' and (features.height, features.width) == (4, 5)
    assert (grid_info.height, grid_info.width) == (4, 5)
    np.testing.assert_allclose(grid_info.k[0], 50.0 / PATCH)  # the camera's fx on the grid
    sent.clear()
    out.publish(frame(np.ones((H, W))), {'features': second})
    kept = image_to_array(sent[2][1])  # coloured with the first frame's basis
    fresh = publisher(('features/pca',), sent)
    fresh.publish(frame(np.ones((H, W))), {'features': second})
    own = image_to_array(sent[-1][1])
    assert kept.shape == own.shape == (H, W, 3) and not np.array_equal(kept, own)
    out.use_model(SimpleNamespace(contract=tiny_contract(patch=7)))
    sent.clear()
    out.publish(frame(np.ones((H, W))), {'features': second})
    np.testing.assert_allclose(sent[1][1].k[0], 50.0 / 7)
    np.testing.assert_array_equal(image_to_array(sent[2][1]), own)  # a basis of its own


def test_descriptor_pca_alone_computes_descriptors_with_a_basis_of_its_own():
    described = model(descriptors=True)
    assert publisher(('descriptors/pca',)).computed(described, 0.0) == ['descriptors']
    assert publisher(('descriptors/pca',)).computed(model(), 0.0) == []
    sent = []
    out = publisher(('features/pca', 'descriptors/pca'), sent)
    rng = np.random.default_rng(3)
    features = rng.normal(size=(1, 6, H // PATCH, W // PATCH)).astype(np.float32)
    descriptors = rng.normal(size=(1, 8, 4 * H // PATCH, 4 * W // PATCH)).astype(np.float32)
    out.publish(frame(np.ones((H, W))), {'features': features, 'descriptors': descriptors})
    assert [topic for topic, _ in sent] == ['features/pca', 'descriptors/pca']
    colours = image_to_array(sent[1][1])
    assert sent[1][1].encoding == 'rgb8' and colours.shape == (H, W, 3)
    # Each of the 16 x 20 cells is one colour, 3.5 camera pixels wide.
    assert len(np.unique(colours.reshape(-1, 3), axis=0)) > 100
    alone = []
    publisher(('descriptors/pca',), alone).publish(frame(np.ones((H, W))),
                                                   {'descriptors': descriptors})
    assert [topic for topic, _ in alone] == ['descriptors/pca']
    np.testing.assert_array_equal(image_to_array(alone[0][1]), colours)  # not the features'
