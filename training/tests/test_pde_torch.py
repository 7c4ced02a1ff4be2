"""The torch positional depth encoding against hand values and the numpy reference."""

import math

import numpy as np
import pytest
import torch

from training.models.pde import positional_depth_encoding
from vd_ros.core import pde as reference
from vd_ros.core.pde import PDEConfig


def test_hand_computed_values():
    code = positional_depth_encoding(torch.full((1, 1, 1), 3.75))[0, :, 0, 0]  # (C,)
    assert code.shape == (32,) and code.dtype == torch.float32
    # Pair 0 has a 15 m wavelength: 3.75 m is a quarter turn, sin = 1, cos = 0.
    assert code[0].item() == pytest.approx(1.0, abs=1e-6)
    assert code[1].item() == pytest.approx(0.0, abs=1e-6)
    # Pair 1: wavelength 15 m * (3e-4) ** (2 / 32) = 9.03 m (paper table).
    wavelength = 15.0 * 3e-4 ** (2 / 32)
    assert wavelength == pytest.approx(9.03, abs=5e-3)
    assert code[2].item() == pytest.approx(math.sin(2 * math.pi * 3.75 / wavelength), abs=1e-6)
    assert code[3].item() == pytest.approx(math.cos(2 * math.pi * 3.75 / wavelength), abs=1e-6)


def test_finest_pair_hand_value_needs_float64_angle():
    # 14.2 m on the 7.5 mm wavelength: ~1.2e4 rad, where a float32 angle is ~1e-3 off.
    config = PDEConfig()
    depth = np.float32(14.2)
    angle = float(depth) * 2 * math.pi / (15.0 * 3e-4 ** (30 / 32))
    code = positional_depth_encoding(torch.tensor([[[14.2]]]), config)[0, :, 0, 0]
    assert code[30].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert code[31].item() == pytest.approx(math.cos(angle), abs=1e-6)


CLASSIC = PDEConfig(channels=8, temperature=1e4, scale=1.0, max_depth_m=10.0)


@pytest.mark.parametrize('config', [PDEConfig(), CLASSIC])
def test_parity_with_numpy_reference(config):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.0, 16.0, size=(3, 13, 17)).astype(np.float32)
    depth[0, 0, :8] = [0.0, np.nan, np.inf, -np.inf, -1.0, 0.01, 16.0, config.max_depth_m]
    depth[1, 1, :3] = [config.min_depth_m, np.nextafter(np.float32(config.max_depth_m), 99),
                       np.nextafter(np.float32(config.min_depth_m), 0)]
    expected = reference.positional_depth_encoding(depth, config)  # (B, C, H, W)
    for shaped in (torch.from_numpy(depth), torch.from_numpy(depth)[:, None]):
        got = positional_depth_encoding(shaped, config).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_invalid_depth_encodes_as_depth_zero_and_max_is_valid():
    config = PDEConfig()
    depth = torch.tensor([[[0.0, math.nan, math.inf, -math.inf, -2.0, 0.049, 15.01, 15.0]]])
    code = positional_depth_encoding(depth, config)[0, :, 0]  # (C, 8)
    zero = code[:, 0]
    assert torch.allclose(zero[1::2], torch.ones(16), atol=1e-6)  # cos(~0) = 1
    assert torch.all(zero[0::2].abs() < 1e-3)  # sin(~0) = 0
    for column in range(1, 7):
        assert torch.equal(code[:, column], zero)
    # exactly d_max is a full turn of pair 0: sin = 0, cos = 1, but not the invalid code
    assert code[0, 7].item() == pytest.approx(0.0, abs=1e-6)
    assert code[1, 7].item() == pytest.approx(1.0, abs=1e-6)
    assert not torch.allclose(code[:, 7], zero, atol=1e-3)


def test_integer_input_and_bad_shape():
    depth = torch.tensor([[[1, 2]]], dtype=torch.int32)
    expected = reference.positional_depth_encoding(np.array([[[1.0, 2.0]]]))
    np.testing.assert_allclose(positional_depth_encoding(depth).numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r'\(2, 3\)'):
        positional_depth_encoding(torch.zeros(2, 3))
    with pytest.raises(ValueError, match='(1, 2, 3, 3)'):
        positional_depth_encoding(torch.zeros(1, 2, 3, 3))
