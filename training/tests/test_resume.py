"""resume_path: the checkpoint each training script resumes from."""

import torch

from training.checkpoint.files import CheckpointManager
from training.engine.resume import resume_path

torch.set_num_threads(1)


def test_auto_is_fresh_without_checkpoints(tmp_path):
    """`auto` on an empty folder starts fresh."""
    assert resume_path('auto', CheckpointManager(str(tmp_path / 'checkpoints'))) is None


def test_auto_takes_the_newest_step(tmp_path):
    """`auto` takes the highest step, not best.pt."""
    manager = CheckpointManager(str(tmp_path / 'checkpoints'), keep_last=3)
    for step in (9, 10, 100):
        manager.save({'step': step}, step, metric=float(step))  # best.pt is step 9
    newest = str(tmp_path / 'checkpoints' / 'step_00000100.pt')
    assert resume_path('auto', manager) == newest


def test_none_is_fresh_even_with_checkpoints(tmp_path):
    """none, None and False never resume."""
    manager = CheckpointManager(str(tmp_path / 'checkpoints'))
    manager.save({'step': 1}, 1)
    for choice in ('none', None, False):
        assert resume_path(choice, manager) is None


def test_a_path_is_taken_as_given(tmp_path):
    """Any other value is the checkpoint path."""
    manager = CheckpointManager(str(tmp_path / 'checkpoints'))
    manager.save({'step': 1}, 1)
    assert resume_path('elsewhere/step_00000007.pt', manager) == 'elsewhere/step_00000007.pt'
