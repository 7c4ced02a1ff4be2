"""The completion head's graph parts: PDE decoding, push-pull fill, the zero-initialised head."""

import math

import numpy as np
import pytest
import torch

from training.models import build_model
from training.models.completion_head import build_completion_head, depth_uncertainty
from training.models.pde import decode_depth
from training.models.push_pull_fill import push_pull_fill
from vd_ros.core.pde import PDEConfig, positional_depth_encoding

H, W = 42, 56


def test_decode_depth_recovers_measured_depth_to_the_micrometre():
    """Decode the numpy PDE in torch: valid depths within 2e-6 m, invalid pixels flagged."""
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.05, 14.99, (2, H, W)).astype(np.float32)
    depth[0, :5] = 0.0
    depth[1, 3, 4] = np.nan
    depth[1, 6, 7] = 20.0  # beyond max_depth_m: invalid
    depth[1, 8, 9] = 0.02  # below min_depth_m: invalid
    code = torch.from_numpy(positional_depth_encoding(depth))
    decoded, valid = decode_depth(code)
    expected = np.nan_to_num(depth)
    expected[(expected < 0.05) | (expected > 15.0)] = 0.0
    assert decoded.shape == valid.shape == (2, 1, H, W)
    assert np.array_equal(valid[:, 0].numpy() > 0, expected > 0)
    assert np.abs(decoded[:, 0].numpy() - expected).max() < 2e-6
    assert float(decoded[valid == 0].abs().max()) == 0.0


def test_decode_depth_refuses_an_encoding_whose_first_pair_wraps():
    """A first wavelength shorter than max_depth_m makes depth ambiguous: refused."""
    config = PDEConfig(temperature=3.0, scale=1.0)  # classic form: wavelength 2 pi m < 15 m
    with pytest.raises(ValueError, match='wraps before max_depth_m 15.0'):
        decode_depth(torch.zeros(1, 32, 4, 4), config)


def _ramp():
    rows, cols = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(),
                                indexing='ij')
    return (1.0 + 0.02 * cols + 0.03 * rows)[None, None]  # (1, 1, H, W), 1 .. 3.35


def test_push_pull_keeps_measured_values_and_fills_constants_exactly():
    """Weight-1 pixels keep their value; a constant field is reproduced everywhere."""
    generator = torch.Generator().manual_seed(0)
    weight = (torch.rand(1, 1, H, W, generator=generator) < 0.05).float()
    values = torch.rand(1, 1, H, W, generator=generator) * 5.0
    filled, weights = push_pull_fill(values, weight)
    assert torch.equal(filled[weight > 0], values[weight > 0])
    assert torch.isfinite(filled).all() and len(weights) == 7  # 42x56 -> ... -> 1x1
    constant, _ = push_pull_fill(torch.full((1, 1, H, W), 2.5), weight)
    assert torch.allclose(constant, torch.full_like(constant, 2.5), atol=1e-6)


def test_push_pull_fills_a_ramp_across_holes_and_between_points():
    """A linear ramp: exact where dense, close in a hole, near it between scattered points.

    Measured: max error 0.07 in the 16 x 24 hole (the ramp spans 1.2 there) and mean error
    0.04 between 150 random points (the ramp spans 2.35); the bounds leave ~50 % margin.
    """
    ramp = _ramp()
    weight = torch.ones(1, 1, H, W)
    full, _ = push_pull_fill(ramp, weight)
    assert torch.allclose(full, ramp, atol=1e-5)
    weight[..., 10:26, 16:40] = 0.0
    holed, _ = push_pull_fill(ramp, weight)
    assert float((holed - ramp).abs().max()) < 0.1
    points = torch.zeros(1, 1, H, W)
    points.view(-1)[torch.randperm(H * W, generator=torch.Generator().manual_seed(1))[:150]] = 1
    sparse, _ = push_pull_fill(ramp, points)
    assert float((sparse - ramp).abs().mean()) < 0.06
    empty, _ = push_pull_fill(ramp, torch.zeros(1, 1, H, W))
    assert float(empty.abs().max()) == 0.0


@pytest.fixture(scope='module')
def tiny():
    """Build a 2-block random model at 42 x 56 and a random measured depth with 20 % valid."""
    torch.manual_seed(0)
    model = build_model({'img_size': [42, 56],
                         'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2}}).eval()
    generator = torch.Generator().manual_seed(1)
    depth = 0.5 + 3.0 * torch.rand(2, H, W, generator=generator)
    depth[torch.rand(2, H, W, generator=generator) > 0.2] = 0.0
    rgb = torch.rand(2, 3, H, W, generator=generator)
    pde = torch.from_numpy(positional_depth_encoding(depth.numpy()))
    with torch.no_grad():
        features = model.encode(rgb, pde)
        predicted = model.decoder(features.maps, (H, W))[0]
    return model, rgb, pde, depth, predicted, features.maps[-1]


def test_zero_initialised_head_returns_its_base_and_the_measurement(tiny):
    """Untrained: fill mixed with 0.25 of the local alignment; measured depth where measured."""
    model, rgb, pde, depth, predicted, features = tiny
    head = build_completion_head(model, {'decoder_share': 0.25}).eval()
    with torch.no_grad():
        completed = head(rgb, pde, predicted, features)
        maps = head.maps(pde, predicted)
    measured = depth[:, None] > 0
    assert completed.shape == (2, 1, H, W) and (completed > 0).all()
    assert torch.allclose(completed[measured], depth[:, None][measured], atol=2e-6)
    base = torch.exp(0.75 * maps.fill_log + 0.25 * maps.local_log)
    assert torch.allclose(completed, base, rtol=1e-5, atol=2e-6)
    # The base is the prediction with the measured / predicted ratio filled in between.
    ratio = depth[:, None][measured] / (predicted[measured] * torch.exp(
        maps.log_scale.expand_as(predicted)[measured]))
    assert float(ratio.log().mean().abs()) < 1e-4  # the global scale is the mean log ratio
    head.residual.bias.data[0] = 0.1  # the log residual
    with torch.no_grad():
        moved = head(rgb, pde, predicted, features)
    assert torch.allclose(moved[~measured], completed[~measured] * math.exp(0.1), rtol=1e-5)
    head.residual.bias.data[1] = 30.0  # the gate fully open: the locally aligned prediction
    with torch.no_grad():
        local = head(rgb, pde, predicted, features)
    assert torch.allclose(local[~measured], torch.exp(maps.local_log + 0.1)[~measured],
                          rtol=1e-5)


def test_head_without_measurement_returns_the_unscaled_prediction(tiny):
    """No valid pixel: scale 1, the fill falls back to the prediction: the decoder's depth."""
    model, rgb, _, _, predicted, features = tiny
    head = build_completion_head(model, {'feature_channels': 0}).eval()
    pde = torch.from_numpy(positional_depth_encoding(np.zeros((2, H, W), np.float32)))
    with torch.no_grad():
        completed = head(rgb, pde, predicted, features)
    assert torch.allclose(completed, predicted.clamp_min(1e-3), rtol=1e-5)


def test_head_refuses_unknown_keys_and_another_feature_width(tiny):
    """Config typos and heads of another model are refused by name."""
    model = tiny[0]
    with pytest.raises(ValueError, match="unknown completion head keys \\['chanels'\\]"):
        build_completion_head(model, {'chanels': [8, 8, 8]})
    with pytest.raises(ValueError, match='decoder_share must be in \\(0, 1\\), got 1.0'):
        build_completion_head(model, {'decoder_share': 1.0})
    with pytest.raises(ValueError, match='feature_dim 384, the model has 64'):
        build_completion_head(model, {'feature_dim': 384})


def test_uncertainty_branch_starts_at_one_scale_and_leaves_the_depth_alone(tiny):
    """Zero last layer: log scale = initial_log_scale everywhere; a warm start keeps depth."""
    model, rgb, pde, depth, predicted, features = tiny
    plain = build_completion_head(model).eval()
    plain.residual.bias.data[0] = 0.05  # a 'trained' head
    head = build_completion_head(model, {'uncertainty': True, 'initial_log_scale': -1.5}).eval()
    assert head.load_depth_weights(plain.state_dict()) == [
        'uncertainty.0.0.weight', 'uncertainty.0.0.bias', 'uncertainty.1.weight',
        'uncertainty.1.bias']
    with torch.no_grad():
        completed, log_scale = head.complete(rgb, pde, predicted, features)
        assert plain.complete(rgb, pde, predicted, features)[1] is None
        assert torch.equal(completed, plain(rgb, pde, predicted, features))
    assert torch.equal(log_scale, torch.full_like(log_scale, -1.5))
    valid = (depth[:, None] > 0).float()
    uncertainty = depth_uncertainty(completed, log_scale, valid)
    assert float(uncertainty[valid > 0].abs().max()) == 0.0
    holes = valid == 0
    assert torch.allclose(uncertainty[holes], completed[holes] * math.exp(-1.5))
    trained = head.uncertainty_only()
    assert {id(p) for p in trained} == {id(p) for p in head.uncertainty.parameters()}
    assert not any(p.requires_grad for p in head.residual.parameters())
    with pytest.raises(RuntimeError, match="missing \\['residual.bias'\\]"):
        head.load_depth_weights({k: v for k, v in plain.state_dict().items()
                                 if k != 'residual.bias'})
    with pytest.raises(ValueError, match='no uncertainty branch'):
        plain.uncertainty_only()
    # The other way round: a head without a branch refuses to drop one silently.
    with pytest.raises(RuntimeError, match='set completion.head.uncertainty=true to keep it'):
        build_completion_head(model).load_depth_weights(head.state_dict())
