"""Training-loop parts: sample stream, batch building, schedules, guard, FLOP counting."""

import math

import numpy as np
import pytest
import torch

from training.data.masking import NoiseShift
from training.data.transforms import build_transform
from training.engine.batch import PretrainBatchBuilder, step_seed
from training.engine.config import load_config, to_plain
from training.engine.divergence import NonFiniteGuard, TrainingDiverged
from training.engine.flops import measure_flops, model_flops_utilization, peak_flops
from training.engine.sample_stream import SeededTransformDataset, StreamSampler
from training.engine.schedule import (budget_learning_rate, build_scheduler, cosine_lambda,
                                      warmup_cosine_factor)
from training.models import positional_depth_encoding
from vd_ros.core.pde import PDEConfig


def _take(sampler, count):
    stream = iter(sampler)
    return [next(stream) for _ in range(count)]


def test_sampler_resumes_mid_stream_and_shards_like_distributed_sampler():
    """A restarted stream continues where it stopped; ranks interleave the global stream."""
    weights = torch.tensor([0.5, 0.25, 0.25])
    full = _take(StreamSampler(weights, 8, seed=3), 20)  # crosses two epoch boundaries
    assert [sid for _, sid in full] == list(range(20))
    assert _take(StreamSampler(weights, 8, seed=3, start=13), 7) == full[13:]
    ranks = [_take(StreamSampler(weights, 8, seed=3, rank=r, world_size=2), 10)
             for r in range(2)]
    merged = sorted(ranks[0] + ranks[1], key=lambda item: item[1])
    assert merged == full  # rank r takes global positions r, r + 2, ...
    assert _take(StreamSampler(weights, 8, seed=3, rank=1, world_size=2, start=5), 5) == \
        ranks[1][5:]
    with pytest.raises(ValueError, match='multiple of world_size'):
        StreamSampler(weights, 9, world_size=2)


def test_sampler_follows_the_weights():
    """Source weights, not sizes, set the drawing frequency."""
    counts = np.bincount([i for i, _ in _take(StreamSampler(torch.tensor([3.0, 1.0]), 4000),
                                              4000)], minlength=2)
    assert abs(counts[0] / 4000 - 0.75) < 0.03


def test_seeded_transform_depends_on_the_sample_id_only():
    """The transform generator is a pure function of (seed, sample id)."""
    dataset = SeededTransformDataset(list(range(10)), lambda s, rng: (s, rng.random()), seed=1)
    assert dataset[(4, 17)] == dataset[(4, 17)]
    assert dataset[(4, 17)][1] != dataset[(4, 18)][1]
    assert dataset[(4, 17)][1] == np.random.default_rng([1, 17]).random()


def _builder():
    cfg = load_config()
    shift = NoiseShift.from_fractions(100, 0.1, 0.2)
    return PretrainBatchBuilder(PDEConfig(), shift, to_plain(cfg.depth), to_plain(cfg.masking))


def _batch():
    generator = torch.Generator().manual_seed(0)
    depth = 0.5 + 3.0 * torch.rand((4, 1, 32, 32), generator=generator)
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[:, :, :8] = False  # a band without depth (e.g. padding)
    return {'rgb': torch.rand((4, 3, 32, 32), generator=generator), 'depth': depth,
            'valid': valid}


def test_train_inputs_mask_only_valid_pixels_and_encode_the_masked_input():
    """Masks avoid invalid pixels, hit the drawn ratio, and the PDE encodes the masked input."""
    builder, batch = _builder(), _batch()
    make = lambda seed: builder.train_inputs(  # noqa: E731
        batch, 5, torch.Generator().manual_seed(seed))
    inputs = make(7)
    invalid = ~batch['valid'][:, 0]
    assert not inputs.target[invalid].any() and not inputs.removed[invalid].any()
    assert (inputs.input_depth[inputs.removed] == 0).all()
    kept = ~inputs.removed & ~invalid
    assert (inputs.input_depth[kept] > 0).float().mean() > 0.99  # noise never empties them
    share = inputs.removed.sum(dim=(1, 2)) / (~invalid).sum(dim=(1, 2))  # (B,)
    torch.testing.assert_close(share, inputs.ratios, atol=0.08, rtol=0)
    torch.testing.assert_close(inputs.pde, positional_depth_encoding(inputs.input_depth))
    assert not torch.equal(inputs.target, batch['depth'][:, 0])  # randomised (3 of 4 branches)
    again = make(7)
    assert torch.equal(again.pde, inputs.pde) and torch.equal(again.target, inputs.target)
    assert not torch.equal(make(8).removed, inputs.removed)


def test_eval_inputs_are_clean_and_seeded():
    """Validation keeps the real depth and repeats its masks for a seed."""
    builder, batch = _builder(), _batch()
    inputs = builder.eval_inputs(batch, 0.5, seed=11, device=torch.device('cpu'))
    valid = batch['valid'][:, 0]
    torch.testing.assert_close(inputs.target, batch['depth'][:, 0] * valid)
    torch.testing.assert_close(inputs.input_depth, inputs.target * ~inputs.removed)
    assert torch.equal(builder.eval_inputs(batch, 0.5, 11, torch.device('cpu')).removed,
                       inputs.removed)
    assert step_seed(0, 1, 2) != step_seed(0, 2, 1)


def test_onecycle_and_warmup_cosine_reach_the_documented_levels():
    """Both schedules start at lr/5, peak at lr after 20 % and end at lr/500."""
    param = torch.nn.Parameter(torch.zeros(1))
    levels = {}
    for kind in ('onecycle', 'warmup_cosine'):
        optimizer = torch.optim.AdamW([param], lr=1e-3)
        scheduler = build_scheduler(optimizer, {
            'kind': kind, 'warmup_fraction': 0.2, 'div_factor': 5.0,
            'final_div_factor': 100.0, 'cycle_momentum': False}, total_steps=50)
        lrs = []
        for _ in range(50):
            lrs.append(optimizer.param_groups[0]['lr'])
            optimizer.step()
            scheduler.step()
        levels[kind] = lrs
        assert lrs[0] == pytest.approx(2e-4) and max(lrs) == pytest.approx(1e-3)
        assert lrs[-1] == pytest.approx(2e-6, rel=1e-6)
        assert int(np.argmax(lrs)) in (9, 10)  # peak after 20 % of the steps
    assert levels['warmup_cosine'][5] == pytest.approx(2e-4 + 0.8e-3 * 5 / 10)  # linear
    assert warmup_cosine_factor(30, 51, 10, 0.2, 0.002) == pytest.approx(
        0.002 + 0.5 * 0.998 * (1 + math.cos(math.pi * 0.5)))
    with pytest.raises(ValueError, match='kind'):
        build_scheduler(torch.optim.AdamW([param]), {'kind': 'step', 'warmup_fraction': 0.1},
                        10)


def test_time_budgeted_face_warms_up_over_steps_and_decays_over_time():
    """The head trainers' rate: linear warm-up over steps times a cosine over the budget."""
    sched = {'lr': 1e-3, 'warmup_steps': 10, 'minutes': 1.0, 'final_lr_fraction': 0.02}
    assert budget_learning_rate(sched, 4, 0.0) == pytest.approx(0.5e-3)
    assert budget_learning_rate(sched, 50, 30.0) == pytest.approx(1e-3 * 0.51)
    assert budget_learning_rate(sched, 50, 90.0) == pytest.approx(2e-5)  # past the budget


def test_cosine_lambda_is_cosine_annealing_in_closed_form():
    """The segmentation heads' decay matches ``CosineAnnealingLR`` step by step."""
    param = torch.nn.Parameter(torch.zeros(1))
    ours, torchs = torch.optim.SGD([param], lr=1e-3), torch.optim.SGD([param], lr=1e-3)
    schedules = (torch.optim.lr_scheduler.LambdaLR(ours, cosine_lambda(40)),
                 torch.optim.lr_scheduler.CosineAnnealingLR(torchs, 40))
    for _ in range(40):
        assert ours.param_groups[0]['lr'] == pytest.approx(torchs.param_groups[0]['lr'],
                                                           rel=1e-12, abs=1e-18)
        for schedule in schedules:
            schedule.optimizer.step()
            schedule.step()


def test_nonfinite_guard_counts_resets_and_stops_after_the_limit():
    """Skipped steps count in total and in a row; a finite step resets the run of them."""
    counts = {'nonfinite_total': 4, 'consecutive_nonfinite': 0, 'other': 7}
    guard = NonFiniteGuard(2, counts)  # counts of a resumed run, updated in place
    assert not guard.record(False, 10) and not guard.diverged
    assert guard.record(True, 11) and guard.in_a_row == 0
    guard.record(False, 12)
    guard.record(False, 13)
    assert guard.diverged and counts == {'nonfinite_total': 7, 'consecutive_nonfinite': 2,
                                         'other': 7}
    error = guard.error(13, '; last checkpoint: x')
    assert isinstance(error, TrainingDiverged) and isinstance(error, FloatingPointError)
    assert str(error) == ('stopping: 2 consecutive steps with a non-finite loss or gradient '
                          '(up to step 13); last checkpoint: x')
    never = NonFiniteGuard(None)
    for step in range(5):
        never.record(False, step)
    assert never.total == 5 and not never.diverged


@pytest.mark.parametrize('total_steps', [2, 3, 5])
def test_onecycle_runs_short_runs_to_the_end(total_steps):
    """A run of a few steps (train.max_steps=2) steps its one-cycle without dividing by zero."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    scheduler = build_scheduler(optimizer, {
        'kind': 'onecycle', 'warmup_fraction': 0.05, 'div_factor': 25.0,
        'final_div_factor': 1e4, 'cycle_momentum': False}, total_steps=total_steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(4e-5) and all(0 < lr <= 1e-3 for lr in lrs)


def test_flop_counter_counts_a_linear_layer_exactly():
    """The FLOP counter counts 2 FLOPs per MAC, and no input grad for inputs without grad."""
    layer = torch.nn.Linear(16, 8, bias=False)
    x = torch.rand(4, 16, requires_grad=False)
    assert measure_flops(lambda: layer(x)) == 2 * 4 * 16 * 8
    # backward of a layer whose input needs no grad: only the weight gradient (one matmul)
    assert measure_flops(lambda: layer(x).sum().backward()) == 2 * (2 * 4 * 16 * 8)
    assert peak_flops(torch.device('cpu')) is None
    assert peak_flops(torch.device('cpu'), override_tflops=100) == 100e12
    assert model_flops_utilization(1e12, 2.0, 4e12) == pytest.approx(0.5)


def test_transform_range_handling_follows_the_config():
    # The range handling runs in the transform: its d_max must be the model's PDE range.
    cfg = load_config(overrides=['model.pde.max_depth_m=10.0',
                                 'data.transform.rescale_range=[0.5,0.6]'])
    config = build_transform(cfg.data.transform).config
    assert config.max_depth_m == 10.0 and config.rescale_range == (0.5, 0.6)
    assert 'range' not in cfg.depth  # no second, unused set of range parameters
