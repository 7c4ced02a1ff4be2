"""Confidence from a model's depth uncertainty: values by hand, bad input, thresholding."""

import math

import numpy as np

from vd_ros.core.depth_confidence import confidence_from_uncertainty, drop_unconfident


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


def test_drop_unconfident_sets_nan_below_the_threshold_and_is_off_at_zero():
    depth = np.array([[1.0, 2.0, 3.0]], np.float32)
    confidence = np.array([[0.2, 0.5, 1.0]], np.float32)
    assert drop_unconfident(depth, confidence, 0.0) is depth
    kept = drop_unconfident(depth, confidence, 0.5)
    assert np.isnan(kept[0, 0]) and kept[0, 1] == 2.0 and kept[0, 2] == 3.0
    assert kept.dtype == np.float32
