"""The numpy positional depth encoding against hand-computed values."""

import math

import numpy as np
import pytest

from vd_ros.core.pde import EPSILON_M, PDEConfig, positional_depth_encoding, sanitize_depth


def test_channel_pairs_match_hand_computation():
    config = PDEConfig()
    code = positional_depth_encoding(np.full((1, 1), 3.75), config)[:, 0, 0]  # (C,)
    assert code.shape == (32,)
    # Pair 0 has a 15 m wavelength: 3.75 m is a quarter turn.
    assert code[0] == pytest.approx(1.0, abs=1e-6)
    assert code[1] == pytest.approx(0.0, abs=1e-6)
    # Pair 15: wavelength 15 m * (3e-4) ** (30 / 32).
    wavelength = 15.0 * 3e-4 ** (30 / 32)
    assert wavelength == pytest.approx(0.0075, abs=1e-4)  # the table in paper.md
    assert code[30] == pytest.approx(math.sin(2 * math.pi * 3.75 / wavelength), abs=1e-4)
    assert code[31] == pytest.approx(math.cos(2 * math.pi * 3.75 / wavelength), abs=1e-4)


def test_invalid_depth_encodes_as_depth_zero():
    config = PDEConfig()
    depth = np.array([[0.0, np.nan, np.inf, -1.0, 0.01, 15.5]], dtype=np.float32)
    code = positional_depth_encoding(depth, config)  # (C, 1, 6)
    zero = positional_depth_encoding(np.full((1, 1), EPSILON_M), config)[:, 0, 0]
    assert np.allclose(zero[0::2], 0.0, atol=1e-3)
    assert np.allclose(zero[1::2], 1.0, atol=1e-6)
    for column in range(depth.shape[1]):
        np.testing.assert_array_equal(code[:, 0, column], zero)


def test_max_depth_is_valid_and_beyond_is_not():
    config = PDEConfig()
    code = positional_depth_encoding(np.array([[15.0, 15.0001]]), config)
    assert code[0, 0, 0] == pytest.approx(0.0, abs=1e-5)  # sin(2 pi) on the coarsest pair
    assert code[1, 0, 0] == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(code[:, 0, 0], code[:, 0, 1])
    np.testing.assert_array_equal(sanitize_depth(np.array([15.0, 15.0001]), config), [15.0, 0.0])


def test_batched_shape_and_classic_transformer_form():
    config = PDEConfig(channels=8, temperature=10000.0, scale=1.0)
    depth = np.random.default_rng(0).uniform(0.1, 10.0, size=(2, 3, 4, 5))
    code = positional_depth_encoding(depth, config)
    assert code.shape == (2, 3, 8, 4, 5) and code.dtype == np.float32
    # T > 1: no division by max depth, pair k uses d / T ** (2k / C).
    expected = np.sin(depth[0, 0, 1, 2] / 10000.0 ** (2 * 1 / 8))
    assert code[0, 0, 2, 1, 2] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize('kwargs', [{'channels': 31}, {'channels': 0}, {'temperature': 1.0},
                                    {'max_depth_m': 0.01}, {'temperature': -3.0}])
def test_bad_parameters_are_rejected(kwargs):
    with pytest.raises(ValueError):
        PDEConfig(**kwargs)


def test_config_round_trips_through_metadata():
    config = PDEConfig(channels=16, max_depth_m=10.0)
    assert PDEConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match='unknown'):
        PDEConfig.from_dict({'channels': 16, 'colour': 3})


@pytest.mark.parametrize('quantised', [True, False])
def test_matches_float64_formula_for_millimetre_and_continuous_depth(quantised):
    # 16UC1 sensors give whole millimetres, stereo (32FC1) continuous values: one formula,
    # within 3e-7 of sin/cos computed in float64 everywhere in the valid range.
    config = PDEConfig()
    depth = np.random.default_rng(1).uniform(config.min_depth_m, config.max_depth_m,
                                             size=(2, 120, 160)).astype(np.float32)
    if quantised:
        depth = np.round(depth * 1000.0).astype(np.float32) / np.float32(1000.0)
    angle = depth.astype(np.float64)[:, None] * config.inverse_wavelengths()[:, None, None]
    expected = np.empty((2, config.channels, 120, 160))
    expected[:, 0::2], expected[:, 1::2] = np.sin(angle), np.cos(angle)
    code = positional_depth_encoding(depth, config)
    assert code.dtype == np.float32 and code.flags.c_contiguous
    assert np.abs(code - expected).max() <= 3e-7
