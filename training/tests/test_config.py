"""Config layering: default.yaml + override files + dotlist, struct checks, saved config."""

import os

from omegaconf import OmegaConf
import pytest

from training.engine.config import CONFIG_DIR, load_config, save_config

SMOKE = os.path.join(CONFIG_DIR, 'smoke.yaml')


def test_layers_merge_in_order_and_interpolations_follow_overrides():
    """Command line beats the override file beats the defaults; interpolations see overrides."""
    cfg = load_config([SMOKE], ['train.max_steps=7', 'model.pde.min_depth_m=0.1'])
    assert cfg.train.max_steps == 7  # command line beats smoke.yaml (300) and default
    assert cfg.train.batch_size == 8  # smoke.yaml beats default (128)
    assert cfg.optim.schedule.kind == 'onecycle'  # untouched default
    assert cfg.depth.min_depth_m == 0.1  # ${model.pde.min_depth_m} resolved after the override
    assert cfg.model.timm_kwargs == {'depth': 4, 'embed_dim': 64, 'num_heads': 2}


def test_unknown_keys_fail_but_free_form_sections_take_new_keys():
    """Typos raise with the key in the message; empty default sections stay open."""
    with pytest.raises(ValueError, match='max_stpes'):
        load_config([], ['train.max_stpes=3'])
    with pytest.raises(ValueError, match='key=value'):
        load_config([], ['train.max_steps'])
    with pytest.raises(FileNotFoundError, match='nope.yaml'):
        load_config(['nope.yaml'])
    cfg = load_config([], ['model.timm_kwargs={depth: 2, drop_path_rate: 0.1}'])
    assert cfg.model.timm_kwargs.drop_path_rate == 0.1


def test_data_root_comes_from_the_environment(monkeypatch):
    """data.base_dir follows VD_ROS_SHARED (set by the Makefile), else ../shared."""
    monkeypatch.setenv('VD_ROS_SHARED', '/somewhere/shared')
    assert load_config().data.base_dir == '/somewhere/shared/data'
    monkeypatch.delenv('VD_ROS_SHARED')
    assert load_config().data.base_dir == '../shared/data'


def test_saved_config_is_resolved_and_reloads_equal(tmp_path):
    """The saved YAML has no interpolations left and reloads to the same values."""
    cfg = load_config([SMOKE], ['run.seed=5'])
    path = str(tmp_path / 'run' / 'config.yaml')
    save_config(cfg, path)
    text = open(path, encoding='utf-8').read()
    assert '${' not in text and os.listdir(tmp_path / 'run') == ['config.yaml']
    assert OmegaConf.to_container(OmegaConf.load(path)) == OmegaConf.to_container(cfg)
