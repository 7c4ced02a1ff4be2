"""VanishingDepth: shapes, freezing, fusion, weights loading and the config builder."""

import copy
import logging
import os

from omegaconf import OmegaConf
import pytest
import torch

from training.models import (
    build_model, create_rgb_encoder, PretrainedWeightsUnavailable, VDFeatures)
from training.models.depth_adapter import default_fusion_blocks
from training.models.fpn_decoder import DepthHead, scaled_channels
from training.models.pde import positional_depth_encoding

DEFAULT_YAML = os.path.join(os.path.dirname(__file__), '..', 'configs', 'default.yaml')


def _inputs(batch, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand((batch, 3, height, width), generator=generator)
    depth = 0.3 + 4.0 * torch.rand((batch, height, width), generator=generator)
    return rgb, positional_depth_encoding(depth)


@pytest.mark.parametrize('batch,height,width', [(1, 112, 112), (2, 70, 98), (3, 126, 84),
                                                (1, 28, 42)])
def test_shapes_for_several_sizes(tiny_model, batch, height, width):
    rgb, pde = _inputs(batch, height, width)
    out = tiny_model(rgb, pde)
    h, w = height // 14, width // 14
    assert out['features'].shape == (batch, 64, h, w)
    assert [tuple(d.shape) for d in out['depths']] == [
        (batch, 1, height >> k, width >> k) for k in range(4)]
    assert all(bool((d >= 0).all()) for d in out['depths'])  # ReLU output, metres
    feats = tiny_model.encode(rgb, pde)
    assert isinstance(feats, VDFeatures) and len(feats.maps) == 4
    assert all(m.shape == (batch, 64, h, w) for m in feats.maps)
    assert feats.cls.shape == (batch, 64)
    # last = final LayerNorm (unit weight, zero bias at init) of the last tokens: zero mean
    assert torch.allclose(feats.last.mean(dim=1), torch.zeros(batch, h, w), atol=1e-4)


def test_bad_inputs_are_rejected(tiny_model):
    rgb, pde = _inputs(1, 112, 112)
    with pytest.raises(ValueError, match='113x112'):
        tiny_model(torch.rand(1, 3, 113, 112), torch.rand(1, 32, 113, 112))
    with pytest.raises(ValueError, match='pde'):
        tiny_model(rgb, pde[:, :16])
    small = _inputs(1, 14, 28)
    with pytest.raises(ValueError, match=r'\(14, 28\)'):
        tiny_model(*small)
    tiny_model.drop_decoder()
    assert tiny_model(*small)['features'].shape == (1, 64, 1, 2)


def test_frozen_encoder_unchanged_and_adapter_trained(tiny_model):
    rgb, pde = _inputs(2, 56, 56)
    model = tiny_model
    model.train()
    assert not model.encoder.training and not model.encoder.vit.training
    assert model.adapter.training and model.decoder.training
    frozen = copy.deepcopy(model.encoder.state_dict())
    adapter = copy.deepcopy(model.adapter.state_dict())
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    loss = sum(d.mean() for d in model(rgb, pde)['depths']) + model(rgb, pde)['features'].mean()
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(not p.requires_grad for p in model.encoder.parameters())
    optimizer.step()
    assert all(torch.equal(frozen[k], v) for k, v in model.encoder.state_dict().items())
    changed = [k for k, v in model.adapter.state_dict().items() if not torch.equal(adapter[k], v)]
    assert any(k.startswith('vit.patch_embed.proj') for k in changed)
    assert any(k.startswith('fusions.') for k in changed)
    assert any(k.startswith('vit.blocks.') for k in changed)
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in model.adapter.parameters()} | {
        id(p) for p in model.decoder.parameters()}


def test_rgb_path_is_the_unchanged_timm_model(tiny_model):
    rgb, _ = _inputs(2, 56, 84)
    image = (rgb - tiny_model.rgb_mean) / tiny_model.rgb_std
    ours = tiny_model.encoder.patch_tokens(image, [3])[0]  # (B, N, D)
    timm_tokens = tiny_model.encoder.vit.forward_intermediates(
        image, indices=[3], output_fmt='NLC', intermediates_only=True)[0]
    assert torch.allclose(ours, timm_tokens, atol=1e-6)


def test_adapter_starts_as_copy_with_new_patch_embedding(tiny_model):
    rgb_vit, depth_vit = tiny_model.encoder.vit, tiny_model.adapter.vit
    assert depth_vit.patch_embed.proj.in_channels == 32
    assert torch.equal(depth_vit.patch_embed.proj.bias, torch.zeros(64))
    assert depth_vit.patch_embed.proj.weight.std().item() == pytest.approx(0.02, rel=0.15)
    assert torch.equal(rgb_vit.blocks[1].attn.qkv.weight, depth_vit.blocks[1].attn.qkv.weight)
    assert rgb_vit.blocks[1].attn.qkv.weight is not depth_vit.blocks[1].attn.qkv.weight


def test_fusion_blocks_and_decoder_widths():
    assert default_fusion_blocks(12) == (2, 5, 8, 11)
    assert default_fusion_blocks(24) == (5, 11, 17, 23)
    assert default_fusion_blocks(4) == (0, 1, 2, 3)
    assert default_fusion_blocks(2) == (0, 0, 1, 1)
    assert scaled_channels(384) == (256, 128, 64, 32)
    assert scaled_channels(768) == (512, 256, 128, 64)


def test_depth_heads_hand_values():
    features = torch.zeros(1, 8, 2, 3)
    single, bins = DepthHead(8), DepthHead(8, bins_m=(10.0, 1.0, 0.1, 0.01))
    assert torch.allclose(single(features), torch.ones(1, 1, 2, 3))  # starts at 1 m
    assert torch.allclose(bins(features), torch.ones(1, 1, 2, 3))
    with torch.no_grad():
        bins.conv.bias.copy_(torch.tensor([0.1, 2.0, -5.0, 3.0]))
        single.conv.bias.fill_(-1.0)
    # relu(r) . b = 0.1 * 10 + 2 * 1 + 0 * 0.1 + 3 * 0.01
    assert torch.allclose(bins(features), torch.full((1, 1, 2, 3), 3.03))
    assert torch.equal(single(features), torch.zeros(1, 1, 2, 3))  # ReLU


def test_rgb_features_reach_the_depth_branch(tiny_model):
    rgb, pde = _inputs(1, 56, 56)
    tiny_model.eval()
    with torch.no_grad():
        a = tiny_model(rgb, pde)['features']
        b = tiny_model(1.0 - rgb, pde)['features']
    assert not torch.allclose(a, b, atol=1e-4)


def test_register_tokens_and_two_block_vit():
    model = build_model({'encoder': 'vit_small_patch14_reg4_dinov2', 'img_size': [56, 56],
                         'timm_kwargs': {'depth': 2, 'embed_dim': 32, 'num_heads': 2}})
    assert model.encoder.vit.num_prefix_tokens == 5
    assert model.adapter.fusion_blocks == (0, 0, 1, 1)
    out = model(*_inputs(2, 42, 56))
    assert out['features'].shape == (2, 32, 3, 4)
    model.drop_decoder()
    assert set(model(*_inputs(1, 28, 28))) == {'features'}


def test_eva02_by_config():
    model = build_model({'encoder': 'eva02_tiny_patch14_224', 'img_size': [56, 56],
                         'timm_kwargs': {'depth': 4, 'embed_dim': 32, 'num_heads': 2}})
    assert model.mean != (0.485, 0.456, 0.406)  # EVA-02 uses the CLIP mean/std
    out = model(*_inputs(1, 56, 70))
    assert out['features'].shape == (1, 32, 4, 5)


def test_build_from_default_yaml_with_tiny_overrides():
    cfg = OmegaConf.merge(OmegaConf.load(DEFAULT_YAML), OmegaConf.from_dotlist([
        'model.timm_kwargs={depth: 4, embed_dim: 64, num_heads: 2}',
        'model.img_size=[56, 56]', 'model.decoder.output=bins']))
    model = build_model(cfg.model)
    assert model.pde_config.max_depth_m == 15.0 and model.pde_config.channels == 32
    assert model.patch_size == 14 and model.feature_dim == 64
    assert model.encoder_name == 'vit_small_patch14_dinov2'
    depths = model(*_inputs(1, 56, 56))['depths']
    assert depths[0].shape == (1, 1, 56, 56)
    assert model.config['decoder']['output'] == 'bins'
    with pytest.raises(ValueError, match='encodr'):
        build_model({'encodr': 'vit_small_patch14_dinov2'})


def test_random_init_warns(caplog, tiny_vit_kwargs):
    with caplog.at_level(logging.WARNING):
        create_rgb_encoder(img_size=(28, 28), **tiny_vit_kwargs)
    assert 'RANDOM weights' in caplog.text


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_weights_path_loads_local_file(tmp_path, suffix, tiny_vit_kwargs):
    source = create_rgb_encoder(img_size=(28, 28), **tiny_vit_kwargs).vit
    path = tmp_path / f'tiny{suffix}'
    if suffix == '.pth':
        torch.save(source.state_dict(), path)
    else:
        from safetensors.torch import save_file
        save_file(source.state_dict(), str(path))
    torch.manual_seed(123)  # a different random init, overwritten by the file
    loaded = create_rgb_encoder(
        weights_path=str(path), img_size=(28, 28), **tiny_vit_kwargs).vit
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        create_rgb_encoder(weights_path=str(tmp_path / 'missing.pth'), **tiny_vit_kwargs)


def test_pretrained_offline_gives_a_clear_error(tmp_path, monkeypatch, tiny_vit_kwargs):
    import huggingface_hub.constants
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path))
    with pytest.raises(PretrainedWeightsUnavailable, match='weights_path'):
        create_rgb_encoder(pretrained=True, img_size=(28, 28), **tiny_vit_kwargs)
