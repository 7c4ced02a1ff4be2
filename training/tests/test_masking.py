"""Removal masks, the noise-shift schedule, multi-scale masks and sparsification."""

import numpy as np
import pytest
from scipy import ndimage
import torch

from training.data.masking import (
    _fade, blocky_noise, multiscale, NoiseShift, perlin_noise, sample_masks, sparsify_depth,
    threshold_noise)


def _valid(batch, size):
    """Build valid maps with a band of missing depth, like a sensor's shadow."""
    valid = torch.ones((batch, size, size), dtype=torch.bool)
    valid[:, :, : size // 8] = False
    valid[:, size // 2, :] = False
    return valid


@pytest.mark.parametrize('perlin_prob,tolerance', [(1.0, 0.01), (0.0, 0.05)])
def test_removed_share_matches_ratio(perlin_prob, tolerance):
    generator = torch.Generator().manual_seed(0)
    valid = _valid(48, 64)
    ratios = torch.linspace(0.1, 0.99, 48)
    masks = sample_masks(valid, ratios, generator, perlin_prob=perlin_prob)
    assert masks.dtype == torch.bool and masks.shape == valid.shape
    assert not (masks & ~valid).any()  # pixels without depth are never removed
    share = masks.sum(dim=(1, 2)) / valid.sum(dim=(1, 2))
    assert (share - ratios).abs().mean().item() < tolerance / 2
    assert (share - ratios).abs().max().item() < 2 * tolerance


def test_masks_are_reproducible_and_mixed():
    valid, ratios = _valid(16, 32), torch.full((16,), 0.4)
    a = sample_masks(valid, ratios, torch.Generator().manual_seed(3))
    b = sample_masks(valid, ratios, torch.Generator().manual_seed(3))
    c = sample_masks(valid, ratios, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_perlin_masks_are_spatially_smooth():
    generator = torch.Generator().manual_seed(1)
    valid, ratios = torch.ones((8, 96, 96), dtype=torch.bool), torch.full((8,), 0.5)
    perlin = sample_masks(valid, ratios, generator, perlin_prob=1.0)
    uniform = threshold_noise(torch.rand((8, 96, 96), generator=generator), valid, ratios)
    assert abs(uniform.float().mean().item() - 0.5) < 0.01
    perlin_parts = sum(ndimage.label(m.numpy())[1] for m in perlin)
    uniform_parts = sum(ndimage.label(m.numpy())[1] for m in uniform)
    assert perlin_parts * 20 < uniform_parts, (perlin_parts, uniform_parts)


def test_perlin_is_zero_on_the_lattice_and_bounded():
    # gradient noise vanishes at lattice points; pixel (0, 0) is one for every lattice size
    noise = perlin_noise(32, 40, 50, torch.Generator().manual_seed(0))
    assert noise.shape == (32, 40, 50)
    assert noise[:, 0, 0].abs().max().item() < 1e-6
    assert noise.abs().max().item() <= 1.0 + 1e-5 and noise.std().item() > 0.1
    assert [_fade(torch.tensor(t)).item() for t in (0.0, 0.5, 1.0)] == [0.0, 0.5, 1.0]


def test_blocky_noise_is_constant_on_blocks():
    noise = blocky_noise(4, 64, 64, torch.Generator().manual_seed(0))
    for field in noise:
        rows, cols = torch.unique(field, dim=0).shape[0], torch.unique(field, dim=1).shape[1]
        assert 10 <= rows <= 48 and 10 <= cols <= 48  # at least 10 cells, at most 0.75 x 64
        assert len(torch.unique(field)) == rows * cols  # one value per block


def test_multiscale_nearest_downsampling():
    x = torch.arange(2 * 9 * 14).view(2, 9, 14)
    levels = multiscale(x, 4)
    assert [tuple(v.shape) for v in levels] == [(2, 9, 14), (2, 4, 7), (2, 2, 3), (2, 1, 1)]
    assert levels[2][1, 1, 2].item() == x[1, 4, 8].item()
    mask = multiscale(torch.ones((1, 1, 8, 8), dtype=torch.bool), 3)[2]
    assert mask.dtype == torch.bool and mask.shape == (1, 1, 2, 2)


def test_sparsify_keeps_exact_number_of_valid_points():
    generator = torch.Generator().manual_seed(0)
    depth = torch.rand((3, 60, 80), generator=generator) + 0.5
    depth[0, :, :40] = 0.0
    depth[2] = 0.0
    depth[2, 0, :7] = 1.0  # fewer valid points than asked for
    sparse = sparsify_depth(depth, 150, generator)
    assert (sparse > 0).sum(dim=(1, 2)).tolist() == [150, 150, 7]
    kept = sparse > 0
    assert torch.equal(sparse[kept], depth[kept])


def test_noise_shift_is_easy_then_monotonically_harder():
    shift = NoiseShift.from_fractions(1000)  # warm-up 100 steps, end values at 200
    assert shift.params(0) == pytest.approx((0.3, 0.1))
    assert shift.params(100) == pytest.approx((0.3, 0.1))
    assert shift.params(150) == pytest.approx((0.4, 0.2))
    assert shift.params(200) == pytest.approx((0.5, 0.3)) == shift.params(10 ** 6)
    steps = range(0, 400, 5)
    mus, sigmas = zip(*(shift.params(s) for s in steps))
    assert all(np.diff(mus) >= 0) and all(np.diff(sigmas) >= 0)
    generator = torch.Generator().manual_seed(0)
    means = [shift.sample(s, 4000, generator).mean().item() for s in (0, 100, 150, 200)]
    assert means[0] == pytest.approx(0.3, abs=0.01) and means[1] == pytest.approx(0.3, abs=0.01)
    assert means[0] < means[2] - 0.05 < means[3] - 0.1
    ratios = shift.sample(500, 4000, generator)
    assert ratios.min().item() == pytest.approx(0.10) and ratios.max().item() == pytest.approx(
        0.99)  # clipped: both bounds are reached at sigma 0.3
    assert ratios.std().item() > 0.2


def test_noise_shift_state_round_trip():
    shift = NoiseShift(10, 30, mu=(0.2, 0.6))
    shift.sample(17, 3)
    restored = NoiseShift(0, 0)
    restored.load_state_dict(shift.state_dict())
    assert restored.state_dict() == shift.state_dict() and restored.last_step == 17
    assert restored.params(20) == shift.params(20)
    with pytest.raises(ValueError, match='30, 10'):
        NoiseShift(30, 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_masks_run_on_the_tensor_device():
    valid = _valid(4, 64).cuda()
    masks = sample_masks(valid, torch.full((4,), 0.5, device='cuda'),
                         torch.Generator().manual_seed(0))
    assert masks.device == valid.device
    assert sparsify_depth(valid.float(), 10, torch.Generator()).device == valid.device
