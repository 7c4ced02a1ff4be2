"""Feature matching and the relative-pose pipeline on synthetic and real 7-Scenes data."""

import numpy as np
import pytest

from training.eval.feature_matching import dense_feature_points, mutual_nearest_neighbours
from training.eval.frames import seven_scenes_frame
from training.eval.pose_estimation import backproject, Intrinsics, lookup_depth
from training.eval.pose_protocol import (evaluate_pair, frame_pairs, keypoint_extractor,
                                         sequence_gap)
from training.evaluate import check_pose_split


def test_mutual_nearest_neighbours_keeps_only_mutual_pairs():
    """Mutual nearest neighbours keep only mutual pairs."""
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], np.float32)
    b = np.array([[0.0, 1.0], [1.0, 0.05]], np.float32)
    matches = mutual_nearest_neighbours(a, b)
    # a2 is nearest to b1 but b1 prefers a0: only (0, 1) and (1, 0) are mutual.
    assert sorted(map(tuple, matches)) == [(0, 1), (1, 0)]


def test_dense_feature_points_patch_centres_and_unit_norm():
    """Dense features become patch centres with unit-norm descriptors."""
    features = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3) + 1.0
    xy, descriptors = dense_feature_points(features, (28, 42))
    # 3 x 2 patches of 14 px: centres at 6.5, 20.5, 34.5 (x) and 6.5, 20.5 (y).
    np.testing.assert_allclose(xy[:3], [[6.5, 6.5], [20.5, 6.5], [34.5, 6.5]])
    np.testing.assert_allclose(xy[3], [6.5, 20.5])
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(descriptors[0] * np.linalg.norm([1.0, 7.0]), [1.0, 7.0],
                               rtol=1e-6)


def test_backproject_and_depth_lookup():
    """Back-projection and depth lookup follow the pinhole model."""
    intrinsics = Intrinsics(500.0, 400.0, 10.0, 20.0)
    points = backproject(np.array([[510.0, 420.0]]), np.array([2.0]), intrinsics)
    np.testing.assert_allclose(points, [[2.0, 2.0, 2.0]])
    depth = np.zeros((5, 5))
    depth[2, 3] = 1.5
    np.testing.assert_allclose(lookup_depth(depth, np.array([[3.2, 1.9], [2.0, 2.0]])),
                               [1.5, 0.0])
    assert lookup_depth(depth, np.array([[2.0, 2.0]]), radius=1)[0] == 1.5


def test_frame_pairs_stay_inside_the_sequence():
    """Frame pairs stay inside the sequence."""
    pairs = frame_pairs(40, 5)
    assert pairs[0] == (0, 40) and pairs[-1] == (359, 399)


def test_orb_and_sift_pose_on_a_real_pair(shared_data):
    """ORB and SIFT recover the pose of a real 7-Scenes pair at gap 5."""
    frame_a = seven_scenes_frame(shared_data, 100)
    frame_b = seven_scenes_frame(shared_data, 105)
    truth_rotation_deg = np.degrees(np.arccos(np.clip(
        (np.trace(frame_a.cam_to_world[:3, :3].T @ frame_b.cam_to_world[:3, :3]) - 1) / 2,
        -1, 1)))
    for method in ('orb', 'sift'):
        extract = keypoint_extractor(method)
        rotation_error, translation_cm, _, matches, inliers = evaluate_pair(
            frame_a, frame_b, extract(frame_a), extract(frame_b), np.random.default_rng(0))
        # Measured on this pair: about 0.3 deg and 0.7 cm for both methods.
        assert rotation_error < 2.0, method
        assert translation_cm < 3.0, method
        assert inliers >= 50 and matches >= inliers, method
    # The bound is informative: the camera really rotates between the two frames.
    assert truth_rotation_deg > 0.5


def test_holdout_pairs_use_each_start_once_and_convert_gaps():
    """Short held-out ranges give fewer pairs, not repeated ones; gaps follow the frame rate."""
    assert frame_pairs(40, 10, 50) == [(i, i + 40) for i in range(10)]
    assert frame_pairs(45, 10, 50) == [(i, i + 45) for i in range(5)]
    assert [sequence_gap(gap, 10.0) for gap in (5, 10, 20, 40, 60)] == [2, 3, 7, 13, 20]
    assert sequence_gap(5, 30.0) == 5


def test_pose_split_refuses_test_frames_near_training_frames():
    """A held-out range closer than MIN_SPLIT_FRAMES to a training range stops the run."""
    test = [{'type': 'tum', 'root': 't', 'select': [150, None]}]
    close = {'data': {'sources': [{'type': 'tum', 'root': 't', 'select': [0, 120]}]}}
    with pytest.raises(ValueError, match='within 50 frames'):
        check_pose_split(close, test, None)
    far = {'data': {'sources': [{'type': 'tum', 'root': 't', 'select': [0, 100]}]}}
    assert check_pose_split(far, test, None) == 't 51'
    head = {'training_sources': [{'type': 'tum', 'root': 't', 'select': [140, 150]}]}
    with pytest.raises(ValueError):
        check_pose_split(far, test, head)
