"""Randomised depth distributions and input corruption."""

import pytest
import torch

from training.data.depth_randomization import (
    corrupt_depth, randomize_depth_distribution, RANGE_GROUPS_M, RERANGE,
    SCALE, SHIFT, UNCHANGED)


def _depth(batch=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    depth = 0.5 + 4.0 * torch.rand((batch, 24, 32), generator=generator)
    depth[:, :5, :7] = 0.0  # holes
    return depth


def _force(branch, batch=8, seed=1):
    depth = _depth(batch)
    out = randomize_depth_distribution(depth, torch.Generator().manual_seed(seed),
                                       branches=torch.full((batch,), branch))
    return depth, out


def test_zeros_stay_zero_and_range_is_respected():
    for branch in (SHIFT, RERANGE, SCALE, UNCHANGED):
        depth, out = _force(branch)
        assert torch.all(out[:, :5, :7] == 0)
        assert torch.all((out == 0) | ((out >= 0.05) & (out <= 15.0)))
    far = torch.full((1, 4, 4), 14.0)
    scaled = randomize_depth_distribution(far, torch.Generator().manual_seed(0),
                                          scale_range=(1.1, 1.2), branches=torch.tensor([SCALE]))
    assert torch.all(scaled == 0)  # 15.4..16.8 m is out of range -> invalid, never clamped


def test_shift_adds_one_offset_within_one_std():
    depth, out = _force(SHIFT)
    valid = depth > 0
    for d, o, v in zip(depth, out, valid):
        offset = o[v] - d[v]
        assert torch.allclose(offset, offset[0].expand_as(offset), atol=1e-5)
        assert abs(offset[0].item()) <= d[v].std(unbiased=False).item() + 1e-5
    close = torch.tensor([[[0.06, 0.3, 0.9]]])
    shifted = randomize_depth_distribution(close, torch.Generator().manual_seed(5),
                                           branches=torch.tensor([SHIFT]))
    assert shifted.min().item() >= 0.05 - 1e-6


def test_rerange_maps_linearly_onto_a_jittered_group_range():
    depth, out = _force(RERANGE, batch=64)
    ends = sorted({v for g in RANGE_GROUPS_M.values() for v in g if v <= 15.0})
    for d, o in zip(depth, out):
        valid = d > 0
        low, high = o[valid].min().item(), o[valid].max().item()
        assert low < high
        assert any(abs(low - e) <= 0.1 * e + 1e-6 or low == 0.05 for e in ends)
        assert any(abs(high - e) <= 0.1 * e + 1e-6 for e in ends)
        unit_in = (d[valid] - d[valid].min()) / (d[valid].max() - d[valid].min())
        unit_out = (o[valid] - low) / (high - low)
        assert torch.allclose(unit_in, unit_out, atol=1e-4)
    spans = [(o[o > 0].max() - o[o > 0].min()).item() for o in out]
    assert max(spans) > 3.0 and min(spans) < 0.5  # different groups were drawn


def test_scale_is_one_symmetric_factor():
    depth, out = _force(SCALE, batch=64)
    factors = []
    for d, o in zip(depth, out):
        ratio = o[d > 0] / d[d > 0]
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), atol=1e-5)
        factors.append(ratio[0].item())
    assert 0.8 <= min(factors) < 0.9 and 1.1 < max(factors) <= 1.2


def test_unchanged_and_branch_shares():
    depth, out = _force(UNCHANGED)
    assert torch.equal(depth, out)
    generator = torch.Generator().manual_seed(0)
    depth = torch.full((2000, 2, 2), 2.0)
    depth[:, 0, 0] = 1.0
    out = randomize_depth_distribution(depth, generator)
    unchanged = (out == depth).flatten(1).all(dim=1).float().mean().item()
    assert unchanged == pytest.approx(0.25, abs=0.04)


def test_reproducible_with_generator():
    depth = _depth()
    a = randomize_depth_distribution(depth, torch.Generator().manual_seed(9))
    b = randomize_depth_distribution(depth, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_corruption_noise_and_outliers():
    generator = torch.Generator().manual_seed(0)
    depth = _depth(batch=4)
    noisy = corrupt_depth(depth, generator, outlier_prob=0.0)
    valid = depth > 0
    assert torch.all((noisy[valid] - depth[valid]).abs() <= 0.003 + 1e-6)
    assert (noisy[valid] - depth[valid]).abs().max().item() > 0.002
    assert torch.all(noisy[~valid] == 0)
    depth = torch.full((2, 200, 200), 3.0)
    spiky = corrupt_depth(depth, generator, noise_m=0.0, outlier_prob=1.0,
                          outlier_fraction=1e-3)
    changed = (spiky != depth).float().mean().item()
    assert changed == pytest.approx(1e-3, rel=0.35)
    assert spiky.max().item() <= 0.95 * 15.0
    assert torch.all((spiky == 0) | (spiky >= 0.05))
