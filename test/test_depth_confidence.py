"""Confidence from a model's depth uncertainty: values by hand, bad input, thresholding."""

import math

import numpy as np

from vd_ros.core.depth_confidence import (camera_confidence, confidence_from_uncertainty,
                                          drop_unconfident)
from vd_ros.core.preprocess import letterbox_params


def test_confidence_is_exp_of_minus_relative_uncertainty_and_one_where_measured():
    predicted = np.array([[2.0, 4.0, 1.0]], np.float32)
    uncertainty = np.array([[0.2, 2.0, 0.0]], np.float32)
    measured = np.array([[0.0, 0.0, 1.5]], np.float32)
    confidence = confidence_from_uncertainty(uncertainty, predicted, measured)
    assert confidence.dtype == np.float32
    np.testing.assert_allclose(confidence, [[math.exp(-0.1), math.exp(-0.5), 1.0]], rtol=1e-6)


def test_confidence_is_never_nan_even_for_bad_model_output():
    predicted = np.array([[np.nan, 2.0, 2.0, 0.0, 2.0, np.inf]], np.float32)
    uncertainty = np.array([[0.1, np.nan, -0.5, 0.1, np.inf, 0.1]], np.float32)
    confidence = confidence_from_uncertainty(uncertainty, predicted, np.zeros_like(predicted))
    assert np.isfinite(confidence).all()
    np.testing.assert_array_equal(confidence, np.zeros_like(predicted))


def test_confidence_is_zero_for_a_negative_depth_or_uncertainty_and_none_is_unmeasured():
    predicted = np.array([[-2.0, 2.0, -np.inf, 2.0]], np.float32)
    uncertainty = np.array([[0.1, -1e-9, 0.1, 0.2]], np.float32)
    confidence = confidence_from_uncertainty(uncertainty, predicted)
    np.testing.assert_allclose(confidence, [[0.0, 0.0, 0.0, math.exp(-0.1)]], rtol=1e-6)


def test_drop_unconfident_sets_nan_below_the_threshold_and_is_off_at_zero():
    depth = np.array([[1.0, 2.0, 3.0]], np.float32)
    confidence = np.array([[0.2, 0.5, 1.0]], np.float32)
    assert drop_unconfident(depth, confidence, 0.0) is depth
    kept = drop_unconfident(depth, confidence, 0.5)
    assert np.isnan(kept[0, 0]) and kept[0, 1] == 2.0 and kept[0, 2] == 3.0
    assert kept.dtype == np.float32 and kept is depth  # in place: no copy per frame


def test_camera_confidence_maps_the_model_grid_to_the_camera_with_one_where_measured():
    letterbox = letterbox_params((8, 12), (4, 6))  # the camera at twice the model grid
    predicted = np.full((4, 6), 2.0, np.float32)
    uncertainty = np.full((4, 6), 0.4, np.float32)  # 20 % everywhere
    uncertainty[0, 0] = np.nan  # a bad model pixel
    measured = np.zeros((8, 12), np.float32)
    measured[5, 7] = 1.3
    confidence = camera_confidence(uncertainty, predicted, letterbox, measured)
    assert confidence.shape == (8, 12) and confidence.dtype == np.float32
    assert np.isfinite(confidence).all() and confidence.min() >= 0.0
    assert confidence[5, 7] == 1.0
    np.testing.assert_allclose(confidence[4:, 8:][confidence[4:, 8:] < 1], math.exp(-0.2),
                               rtol=1e-6)
    assert confidence[0, 0] < math.exp(-0.2)  # the bad pixel pulls its corner down
