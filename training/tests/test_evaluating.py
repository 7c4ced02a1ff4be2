"""training.engine.evaluating: no gradients inside, every sub-module's mode restored after."""

import pytest
import torch

from training.engine.evaluating import evaluating


def two_part_model() -> torch.nn.Module:
    """Return a model with a trainable part beside a frozen part held in eval mode."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    model.train()
    model[1].eval()
    return model


def test_the_block_runs_in_eval_mode_without_gradients():
    model, head = two_part_model(), torch.nn.Linear(3, 1)
    with evaluating(model, head):
        assert not model.training and not model[0].training and not head.training
        out = head(model(torch.ones(2, 3)))
    assert not out.requires_grad
    assert head(torch.ones(2, 3)).requires_grad


def test_each_sub_module_gets_its_own_mode_back():
    model, head = two_part_model(), torch.nn.Linear(3, 1)
    head.eval()
    with evaluating(model, head):
        pass
    assert model.training and model[0].training
    assert not model[1].training, 'a part held in eval mode was switched to training'
    assert not head.training


def test_modes_are_restored_when_the_block_raises():
    model = two_part_model()
    with pytest.raises(RuntimeError):
        with evaluating(model):
            raise RuntimeError('validation failed')
    assert model.training and not model[1].training
