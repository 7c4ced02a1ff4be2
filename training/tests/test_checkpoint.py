"""Checkpoint files: atomic replace, keep-last-N + best, RNG states, each format checked."""

import os
import random

import numpy as np
import pytest
import torch

from training.checkpoint.completion import load_completion_head, read_best_head, read_head_state
from training.checkpoint.files import atomic_save, CheckpointManager, load_checkpoint
from training.checkpoint.formats import (CheckpointFormatError, CheckpointMismatchError,
                                         COMPLETION_FORMAT, HEADS_FORMAT, HeadsMismatchError,
                                         PRETRAIN_FORMAT)
from training.checkpoint.heads import load_heads_checkpoint
from training.checkpoint.model import read_model_checkpoint
from training.checkpoint.pretrain import read_pretrain
from training.checkpoint.weights import write_weights_checkpoint
from training.engine.rng_state import capture_rng_state, restore_rng_state


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError('disk full (simulated)')


def test_failed_write_leaves_the_old_file_and_no_temp_files(tmp_path):
    """A write that fails half-way keeps the previous checkpoint intact."""
    path = str(tmp_path / 'ckpt.pt')
    atomic_save({'step': 1, 'w': torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match='disk full'):
        atomic_save({'step': 2, 'w': torch.zeros(3), 'bad': _Unpicklable()}, path)
    assert os.listdir(tmp_path) == ['ckpt.pt']
    state = load_checkpoint(path)
    assert state['step'] == 1 and torch.equal(state['w'], torch.ones(3))


def test_keeps_last_n_and_the_best(tmp_path):
    """Only the newest step files survive; best.pt holds the lowest finite metric."""
    manager = CheckpointManager(str(tmp_path), keep_last=2)
    for step, metric in zip(range(1, 6), [3.0, 1.0, 2.0, float('nan'), 4.0]):
        manager.save({'step': step}, step, metric)
    names = sorted(os.listdir(tmp_path))
    assert names == ['best.pt', 'step_00000004.pt', 'step_00000005.pt']
    best = load_checkpoint(manager.best_path)
    assert best['step'] == 2 and best['best_metric'] == 1.0
    assert load_checkpoint(manager.latest())['step'] == 5
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        load_checkpoint(str(tmp_path / 'missing.pt'))


def _draw():
    return (random.random(), float(np.random.rand()), float(np.random.randn()),
            float(torch.rand(1)))


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    """Python, numpy and torch draws repeat after restoring a saved state."""
    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    torch.manual_seed(3)
    path = str(tmp_path / 'rng.pt')
    atomic_save({'rng': capture_rng_state()}, path)
    expected = [_draw() for _ in range(3)]
    _draw()
    restore_rng_state(load_checkpoint(path)['rng'])
    assert [_draw() for _ in range(3)] == expected


def test_every_reader_refuses_another_format_with_the_same_error(tmp_path):
    """Each checked reader names the file, the format it needs, what it found and the writer."""
    files = {}
    for name, found in (('pretrain', PRETRAIN_FORMAT), ('completion', COMPLETION_FORMAT),
                        ('heads', HEADS_FORMAT), ('other', 'something-else')):
        files[name] = str(tmp_path / f'{name}.pt')
        torch.save({'format': found, 'model': {'w': torch.ones(1)}}, files[name])
    torch.save([1, 2], str(tmp_path / 'list.pt'))
    pretrain = r'not a pretraining checkpoint \(format vd_ros\.pretrain/1\): found '
    with pytest.raises(CheckpointFormatError, match=r'completion\.pt: ' + pretrain + r'a '
                       r'completion-head checkpoint \(vd_ros\.completion/1\); write one with '
                       r'training/train\.py'):
        read_pretrain(files['completion'])
    with pytest.raises(CheckpointFormatError, match=pretrain + r"format 'something-else'"):
        write_weights_checkpoint(files['other'], str(tmp_path / 'slim.pt'))
    with pytest.raises(CheckpointMismatchError, match=pretrain + r'a segmentation heads file'):
        read_model_checkpoint(files['heads'])
    assert read_model_checkpoint(files['other']).state_dict.keys() == {'w'}  # as before
    completion = r'not a completion-head checkpoint \(format vd_ros\.completion/1\): found '
    with pytest.raises(CheckpointFormatError, match=completion + r'a pretraining checkpoint'):
        read_head_state(files['pretrain'], {'step': None})
    with pytest.raises(CheckpointFormatError, match=completion + 'a segmentation heads'):
        load_completion_head(files['heads'], None, None)
    with pytest.raises(HeadsMismatchError, match=r'not a segmentation heads file \(format '
                       r'vd_ros-seg-head-1\): found a completion-head checkpoint'):
        load_heads_checkpoint(files['completion'], None)
    with pytest.raises(HeadsMismatchError, match='found a list, not a checkpoint dict'):
        load_heads_checkpoint(str(tmp_path / 'list.pt'), None)
    assert read_best_head(str(tmp_path / 'none.pt')) is None  # adapt's first invocation
    with pytest.raises(CheckpointFormatError, match=r'pretrain\.pt: not an adaptation best-head '
                       r'file \(keys step, ratio, row, head\): found a pretraining checkpoint'):
        read_best_head(files['pretrain'])
