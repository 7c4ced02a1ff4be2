"""Which parts pay to adapt on a recording: the completion head alone, or more of the model.

``vd_ros_adapt`` trains the completion head on a recording's own measured depth. This
benchmark asks whether also tuning the depth decoder, or the normalisation layers of the depth
adapter, pays: every variant starts from the same recovered model, sees the same batches (same
frames, masks and seeds) for the same number of steps, and is scored on the same frames. The
steps, not a wall-time budget, are equal, so the machine's load does not decide the ranking;
the seconds per step say what each variant costs.

Splits (as ``bench.adapt_bench``): the test part is the last ``--test-share`` of the sequence
after a ``--gap-frames`` gap; the frames before it are split again the same way into training
frames and a held-back part (what ``vd_ros_adapt`` would choose a checkpoint on). RMSE in mm at
150 / 500 / 1500 points and Perlin 50 % holes, model grid, mean over frames; the linear fill and
the unadapted model on the same inputs. ``features cos`` is the mean cosine similarity of the
exported ``features`` output to the unadapted model's on the test frames (1 = unchanged: the
segmentation head and ``~/features`` read those tokens).

Usage (defaults: the shipped model, ``tum_fr1_rpy``, 150 steps, all three variants):
    python -m bench.adapt_tuning [--steps N] [--variants head decoder adapter-norms]
"""

import argparse
import copy
import math
import os
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np
import torch
from torch.utils.data import Subset

from training.data.datasets import build_source
from training.data.recording import recording_source, time_split
from training.data.shared_paths import command_text, report_path, resolve_data_root
from training.data.transforms import build_transform
from training.engine.completion_batch import log_l1_loss, stream_batch
from training.engine.completion_val import build_val_set, validate
from training.engine.config import load_config_with_section
from training.engine.sample_stream import stream_loader
from training.engine.schedule import warmup_cosine_factor
from training.eval.adaptation import pattern_names
from training.export.recover import recover

COMPLETION_CONFIG = os.path.join('training', 'configs', 'completion.yaml')
ADAPT_CONFIG = os.path.join('training', 'configs', 'adapt.yaml')
VARIANTS = ('head', 'decoder', 'adapter-norms')


def trainable_parameters(variant: str, model, head) -> List[torch.nn.Parameter]:
    """Return the parameters a variant trains (the head always), with requires_grad set."""
    model.requires_grad_(False)
    head.requires_grad_(True)
    extra: List[torch.nn.Parameter] = []
    if variant == 'decoder':
        extra = list(model.decoder.parameters())
    elif variant == 'adapter-norms':
        extra = [p for m in model.adapter.modules() if isinstance(m, torch.nn.LayerNorm)
                 for p in m.parameters()]
    elif variant != 'head':
        raise ValueError(f'unknown variant {variant!r}: one of {VARIANTS}')
    for parameter in extra:
        parameter.requires_grad_(True)
    return list(head.parameters()) + extra


def train_variant(variant: str, graph, loader, ccfg, steps: int, device) -> tuple:
    """Train one variant for ``steps`` steps; return (model, head, CPU seconds per step)."""
    model = copy.deepcopy(graph.model).to(device).eval()
    head = copy.deepcopy(graph.completion_head).to(device).train()
    params = trainable_parameters(variant, model, head)
    optimizer = torch.optim.AdamW(params, lr=ccfg['lr'], weight_decay=ccfg['weight_decay'])
    consumed, cpu_s, done = 0, 0.0, 0
    for sample in loader:
        if done == steps:
            break
        batch = stream_batch(sample, ccfg, consumed, model, device)
        consumed += ccfg['batch_size']
        if batch is None:
            continue
        for group in optimizer.param_groups:  # the adaptation's schedule, over steps here
            group['lr'] = ccfg['lr'] * warmup_cosine_factor(
                done, steps, ccfg['warmup_steps'], 0.0, ccfg['final_lr_fraction'])
        start = time.process_time()
        with torch.set_grad_enabled(variant != 'head'):
            features = model.encode(batch.rgb, batch.pde)
            depth = model.decoder(features.maps, tuple(batch.rgb.shape[-2:]))[0]
        completed, _ = head.complete(batch.rgb, batch.pde, depth, features.maps[-1])
        loss = log_l1_loss(completed, batch.target, batch.held_out)
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, ccfg['grad_clip'])
            optimizer.step()
        cpu_s += time.process_time() - start
        done += 1
    model.requires_grad_(False)
    return model, head.eval(), cpu_s / max(done, 1)


@torch.no_grad()
def feature_cosine(model, reference, val) -> float:
    """Mean cosine similarity per token of ``features`` against the reference model's."""
    values = []
    for batch in val.batches.values():
        mine = model.encode(batch.rgb, batch.pde).last  # (B, D, h, w)
        theirs = reference.encode(batch.rgb, batch.pde).last
        values.append(torch.nn.functional.cosine_similarity(mine, theirs, dim=1).mean().item())
    return float(np.mean(values))


def table(rows: Dict[str, Dict[str, float]], patterns: List[str], title: str) -> List[str]:
    """Markdown rows: per variant, RMSE per pattern and the change against the unadapted."""
    base = rows['unadapted']
    lines = [f'### {title}', '', '| variant | ' + ' | '.join(patterns) +
             ' | mean vs unadapted | s CPU per step | features cos |',
             '|---|' + '---:|' * (len(patterns) + 3)]
    fill = {p: base[f'{p} linear fill'] for p in patterns}
    lines.append('| linear fill | ' + ' | '.join(f'{fill[p]:.1f}' for p in patterns) +
                 ' | | | |')
    for name, row in rows.items():
        change = np.mean([row[f'{p} head'] / base[f'{p} head'] - 1.0 for p in patterns])
        lines.append(f'| {name} | ' + ' | '.join(
            f'{row[f"{p} head"]:.1f} ({100 * (row[f"{p} head"] / fill[p] - 1):+.0f} %)'
            for p in patterns) + f' | {100 * change:+.1f} % | '
            f'{row.get("s_per_step", math.nan):.2f} | {row.get("cos", 1.0):.4f} |')
    return lines + ['']


def main() -> None:
    """Train each variant the same way and print (and optionally write) the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=os.path.join('models', 'vd_cpu.onnx'))
    parser.add_argument('--sequence', default='tum_fr1_rpy', help='folder under ../shared/data')
    parser.add_argument('--steps', type=int, default=150)
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--lrs', type=float, nargs='+',
                        help='peak learning rates to try per variant (default: adapt.yaml)')
    parser.add_argument('--test-share', type=float, default=0.2)
    parser.add_argument('--gap-frames', type=int, default=50)
    parser.add_argument('--frames', type=int, default=24, help='scored frames per part')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--report')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config_with_section(COMPLETION_CONFIG, 'completion', [ADAPT_CONFIG], [])
    ccfg = cfg['completion']
    with tempfile.TemporaryDirectory() as scratch:
        graph, contract, _ = recover(args.model, scratch)
    cfg['data']['transform']['size'] = list(contract.input_size)
    recording = os.path.join(resolve_data_root(cfg['data']['base_dir']), args.sequence)
    dataset = build_source(recording_source(recording), None)
    outer = time_split(len(dataset), None, args.test_share, args.gap_frames)
    inner = time_split(outer.train_stop, None, args.test_share, args.gap_frames)
    parts = {'held-back part': range(inner.val_start, outer.train_stop),
             'test part': range(outer.val_start, outer.count)}
    device = torch.device('cpu')
    sets = {}
    for name, frames in parts.items():
        picks = [frames[int(i * len(frames) / min(args.frames, len(frames)))]
                 for i in range(min(args.frames, len(frames)))]
        sets[name] = build_val_set(Subset(dataset, picks), list(range(len(picks))), cfg,
                                   graph.model, device)
    transform = build_transform({**cfg['data']['transform'], **ccfg['transform']}, train=True)
    train = Subset(dataset, range(inner.train_stop))
    weights = torch.ones(len(train))
    results = {name: {'unadapted': validate(graph.model, graph.completion_head, val)}
               for name, val in sets.items()}
    lrs = args.lrs or [ccfg['lr']]
    for variant, lr in [(v, lr) for v in args.variants for lr in lrs]:
        label = variant if len(lrs) == 1 else f'{variant}, lr {lr:g}'
        loader = stream_loader(train, weights, transform, ccfg['batch_size'], ccfg['seed'],
                               cfg['data']['samples_per_epoch'], 1)
        model, head, per_step = train_variant(variant, graph, loader, {**ccfg, 'lr': lr},
                                              args.steps, device)
        for name, val in sets.items():
            row = validate(model, head, val)
            row['s_per_step'] = per_step
            row['cos'] = feature_cosine(model, graph.model, sets['test part'])
            results[name][label] = row
        print(f'{label}: {per_step:.2f} s CPU per step', flush=True)
    patterns = pattern_names(results['test part']['unadapted'])
    lines = [f'Command: `{command_text("python -m bench.adapt_tuning", sys.argv[1:])}`', '',
             f'Model `{report_path(args.model)}`, recording `{report_path(recording)}` '
             f'({len(dataset)} frames): trained on frames 0-{inner.train_stop - 1}, held-back '
             f'part {inner.val_start}-{outer.train_stop - 1}, test part '
             f'{outer.val_start}-{outer.count - 1}; {args.steps} steps of '
             f'{ccfg["batch_size"]} frames per variant, lr {" / ".join(f"{v:g}" for v in lrs)}, '
             f'{args.threads} '
             f'thread(s); {args.frames} frames scored per part. RMSE mm (vs linear fill).', '']
    for name in parts:
        lines += table(results[name], patterns, name)
    text = '\n'.join(lines)
    print(text)
    if args.report:
        with open(args.report, 'w') as stream:
            stream.write(text + '\n')


if __name__ == '__main__':
    main()
