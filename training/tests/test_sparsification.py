"""Sparsification curves against values computed by hand."""

import math

import numpy as np
import pytest

from training.eval.sparsification import kept_rmse, sparsification


def test_a_perfect_ranking_matches_the_oracle_with_zero_ause():
    error = np.array([0.4, -0.1, 0.3, -0.2])
    result = sparsification(error, np.abs(error) * 7.0, fractions=(0.25, 0.5, 1.0))
    # Kept by |error|: 0.1 | 0.1, 0.2 | all four.
    expected = [0.1, math.sqrt((0.01 + 0.04) / 2), math.sqrt((0.16 + 0.01 + 0.09 + 0.04) / 4)]
    np.testing.assert_allclose(result['curve'], expected)
    np.testing.assert_allclose(result['oracle'], expected)
    assert result['ause'] == pytest.approx(0.0)
    assert result['half_ratio'] == pytest.approx(expected[1] / expected[2])


def test_a_reversed_ranking_has_the_gap_by_hand():
    error = np.array([0.4, -0.1, 0.3, -0.2])
    result = sparsification(error, -np.abs(error), fractions=(0.5, 1.0))
    worst_half = math.sqrt((0.16 + 0.09) / 2)
    best_half = math.sqrt((0.01 + 0.04) / 2)
    np.testing.assert_allclose(result['curve'][0], worst_half)
    assert result['ause'] == pytest.approx((worst_half - best_half) / 2)
    assert result['half_ratio'] > 1.0


def test_kept_rmse_keeps_at_least_one_pixel_and_refuses_bad_input():
    np.testing.assert_allclose(kept_rmse(np.array([2.0, 5.0]), np.array([1, 0]), (0.1,)), [5.0])
    with pytest.raises(ValueError, match='non-finite'):
        sparsification(np.ones(3), np.array([0.1, np.nan, 0.2]))
    with pytest.raises(ValueError, match='at least one'):
        sparsification(np.ones(0), np.ones(0))
