r"""Adaptation benchmark: adapt on a sequence's first part, score on its last part.

For every sequence of ``../shared/data`` long enough for two gaps (7-Scenes redkitchen, TUM
fr1_rpy), the last ``--test-share`` of its frames is the test part; ``vd_ros_adapt`` gets only
the frames before it, minus a gap of ``--gap-frames`` (and then splits those in time itself,
choosing its checkpoint on its own held-back end). Test rows, all on the same frames and
inputs (150 / 500 / 1500 random points, Perlin 50 % holes, model grid), RMSE in mm: the linear
fill, the unadapted model, the adapted model.

The shipped model's encoder and completion head trained on frames of both sequences, so its
rows measure adaptation to a room it has seen. The *fair* case trains a completion head on
the shipped encoder without the sequence (``training.train_completion``, ``--fair-minutes``,
from scratch), exports it, then adapts that model on the sequence: the head never saw the
room, the encoder did. The *unseen* case pretrains the whole model without the sequence
(cpu.yaml's recipe for ``--unseen-steps`` steps, about 50 minutes here), trains its head the
same way and adapts it: a room and sensor the model never trained on, the user's case.

Every step is the documented command, run as a subprocess; a step whose output exists is
reused (``--fresh`` redoes all). Writes ``docs/results/adaptation.md`` (``--report``).

Usage: python -m bench.adapt_bench [--minutes 20] [--fair-minutes 15] [--replay 0.25]
    [--unseen-steps 2000] [--sequences 7scenes tum] [--cases shipped fair unseen]
    [--work-dir runs/adapt_bench] [--fresh]    (cases default: shipped fair)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

from omegaconf import OmegaConf

from training.data.datasets import build_source
from training.data.recording import recording_source, time_split
from training.data.shared_paths import command_text, report_path, resolve_data_root
from training.engine.completion_val import build_val_set, validate
from training.eval.adaptation import pattern_names
from training.export.recover import read_contract, recover

SEQUENCES = {'7scenes': ('7scenes', '7scenes_redkitchen'), 'tum': ('tum', 'tum_fr1_rpy')}
CPU_CONFIG = os.path.join('training', 'configs', 'cpu.yaml')
SHIPPED = os.path.join('models', 'vd_cpu.onnx')


def run(command: List[str], log: str) -> None:
    """Run one step, its output appended to ``log``; raise on failure."""
    print('$ ' + ' '.join(command), flush=True)
    with open(log, 'a') as stream:
        result = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT)
    if result.returncode not in (0, 2):
        raise RuntimeError(f'step failed ({result.returncode}), see {log}: {command}')


def without_config(kind: str, root: str, work: str) -> str:
    """Write cpu.yaml's training sources less ``root`` as a config file; return its path."""
    cfg = OmegaConf.load(CPU_CONFIG)
    cfg.data.sources = [s for s in cfg.data.sources if s.root != root]
    config = os.path.join(work, f'without_{kind}.yaml')
    OmegaConf.save(OmegaConf.create({'data': {'sources': cfg.data.sources}}), config)
    return config


def head_and_export(checkpoint: str, heads: Optional[str], config: str, name: str, args,
                    work: str) -> str:
    """Train a completion head on ``checkpoint`` without the sequence, export; return path."""
    out = os.path.join(work, f'{name}.onnx')
    head_dir = os.path.join(work, f'{name}_head')
    run([sys.executable, '-m', 'training.train_completion', '--config', CPU_CONFIG,
         '--config', config, '--checkpoint', checkpoint,
         '--minutes', str(args.fair_minutes), '--out-dir', head_dir],
        os.path.join(work, 'log.txt'))
    checkpoints = sorted(os.listdir(os.path.join(head_dir, 'checkpoints')))
    head = os.path.join(head_dir, 'checkpoints', [c for c in checkpoints if c.startswith(
        'step_')][-1])
    contract = read_contract(SHIPPED)
    run([sys.executable, '-m', 'training.export_onnx', '--config', CPU_CONFIG,
         '--checkpoint', checkpoint, *(['--heads', heads] if heads else []),
         '--completion-head', head,
         '--input-size', *[str(v) for v in contract.input_size], '--fp16-weights',
         '--output', out], os.path.join(work, 'log.txt'))
    return out


def fair_model(kind: str, root: str, args, work: str) -> str:
    """Put a completion head trained without ``root`` on the shipped encoder; return path."""
    out = os.path.join(work, f'fair_{kind}.onnx')
    if os.path.isfile(out):
        return out
    recovered = os.path.join(work, 'recovered')
    if not os.path.isfile(os.path.join(recovered, 'pretrain.pt')):
        run([sys.executable, '-m', 'training.onnx_recover', SHIPPED, '--out-dir', recovered],
            os.path.join(work, 'log.txt'))
    return head_and_export(os.path.join(recovered, 'pretrain.pt'),
                           os.path.join(recovered, 'fpn.pt'),
                           without_config(kind, root, work), f'fair_{kind}', args, work)


def unseen_model(kind: str, root: str, args, work: str) -> str:
    """Pretrain, then train a completion head, all without ``root``; export; return path.

    The pretraining run (cpu.yaml's recipe, ``--unseen-steps`` steps, its checkpoint chosen
    on cpu.yaml's validation split) is the long step: about 50 minutes for 2000 steps here.
    No segmentation head is exported: the benchmark scores completed depth only.
    """
    out = os.path.join(work, f'unseen_{kind}.onnx')
    if os.path.isfile(out):
        return out
    config = without_config(kind, root, work)
    checkpoint = os.path.join(work, 'unseen_pretrain', 'checkpoints', 'best.pt')
    if not os.path.isfile(checkpoint):
        run([sys.executable, '-m', 'training.train', '--config', CPU_CONFIG, '--config', config,
             f'run.out_dir={work}', 'run.name=unseen_pretrain',
             f'train.max_steps={args.unseen_steps}', 'train.threads=2'],
            os.path.join(work, 'log.txt'))
    return head_and_export(checkpoint, None, config, f'unseen_{kind}', args, work)


def adapted_model(model: str, name: str, recording: str, stop: int, args, work: str) -> str:
    """Adapt ``model`` on frames ``[0, stop)`` of ``recording``; return the output path."""
    out = os.path.join(work, f'{name}_adapted.onnx')
    if not os.path.isfile(out):
        run([sys.executable, '-m', 'training.adapt', recording, '--model', model,
             '--out', out, '--frames', '0', str(stop), '--minutes', str(args.minutes),
             '--replay', str(args.replay), '--work-dir', os.path.join(work, f'{name}_run')],
            os.path.join(work, 'log.txt'))
    return out


def score(models: Dict[str, str], dataset, indices: List[int], work: str) -> Dict[str, dict]:
    """Return the validation row of each model's completion head on the same test inputs."""
    cfg = OmegaConf.to_container(OmegaConf.load(os.path.join(
        'training', 'configs', 'completion.yaml')))
    rows, val = {}, None
    for label, path in models.items():
        if not os.path.isfile(path):
            continue  # refused: nothing written
        with tempfile.TemporaryDirectory(dir=work) as scratch:
            graph, contract, _ = recover(path, scratch)
        if val is None:
            settings = {'data': {'transform': {'size': list(contract.input_size)}},
                        'completion': {**cfg['completion'], 'val_points': [150, 500, 1500]}}
            val = build_val_set(dataset, indices, settings, graph.model, 'cpu')
        rows[label] = validate(graph.model, graph.completion_head, val)
    return rows


def report_lines(results: List[dict], args, argv: List[str]) -> List[str]:
    """Return the markdown report."""
    lines = ['# Adaptation to a recording (`vd_ros_adapt`)', '',
             f'Command: `{command_text("python -m bench.adapt_bench", argv)}`. Adaptation '
             f'{args.minutes} min, replay share {args.replay}, one '
             'torch thread and one loader process. RMSE in mm on the test part (the last '
             f'{int(100 * args.test_share)} % of each sequence, {args.gap_frames} frames after '
             'everything the tool read), model grid, the same inputs for every row.', '']
    for result in results:
        lines += [f'## {result["sequence"]}: test frames {result["test"]}, tool given '
                  f'{result["given"]}', '',
                  'Input models: ' + ', '.join(f'{case} `{rows["model"]}`' for case, rows in
                                               result['cases'].items()) + '.', '',
                  '| case | input | linear fill | unadapted | adapted | unadapted vs fill | '
                  'adapted vs fill | adapted vs unadapted | minutes | steps |',
                  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
        for case, rows in result['cases'].items():
            before, after = rows.get('unadapted'), rows.get('adapted')
            meta = rows.get('meta') or {}
            for name in pattern_names(before):
                fill = before[f'{name} linear fill']
                b = before[f'{name} head']
                if after is None:
                    lines.append(f'| {case} | {name} | {fill:.1f} | {b:.1f} | refused | '
                                 f'{100 * (b / fill - 1):+.0f} % | | | | |')
                    continue
                a = after[f'{name} head']
                lines.append(f'| {case} | {name} | {fill:.1f} | {b:.1f} | {a:.1f} | '
                             f'{100 * (b / fill - 1):+.0f} % | {100 * (a / fill - 1):+.0f} % | '
                             f'{100 * (a / b - 1):+.0f} % | {meta.get("minutes", "")} | '
                             f'{meta.get("steps", "")} |')
        lines += ['', 'Forgetting: the same models on the base test split (`holdout.sources` of '
                  'cpu.yaml, 24 frames), as `vd_ros_adapt` reports it:', '',
                  '| case | input | linear fill | unadapted | adapted | unadapted vs fill | '
                  'adapted vs fill |', '|---|---|---:|---:|---:|---:|---:|']
        for case, rows in result['cases'].items():
            holdout = (rows.get('meta') or {}).get('base_holdout')
            if not holdout:
                continue
            before, after = holdout['input'], holdout['adapted']
            for name in pattern_names(before):
                fill, b, a = (before[f'{name} linear fill'], before[f'{name} head'],
                              after[f'{name} head'])
                lines.append(f'| {case} | {name} | {fill:.1f} | {b:.1f} | {a:.1f} | '
                             f'{100 * (b / fill - 1):+.0f} % | {100 * (a / fill - 1):+.0f} % |')
        lines.append('')
    return lines


CASES = {'shipped': None, 'fair': fair_model, 'unseen': unseen_model}


def main(argv=None) -> int:
    """Run every sequence, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--minutes', type=float, default=20.0)
    parser.add_argument('--fair-minutes', type=float, default=15.0)
    parser.add_argument('--replay', type=float, default=0.25)
    parser.add_argument('--test-share', type=float, default=0.2)
    parser.add_argument('--gap-frames', type=int, default=50)
    parser.add_argument('--test-frames', type=int, default=40)
    parser.add_argument('--sequences', nargs='+', default=sorted(SEQUENCES),
                        choices=sorted(SEQUENCES))
    parser.add_argument('--unseen-steps', type=int, default=2000)
    parser.add_argument('--cases', nargs='+', default=['shipped', 'fair'],
                        choices=sorted(CASES))
    parser.add_argument('--work-dir', default=os.path.join('runs', 'adapt_bench'))
    parser.add_argument('--report', default=os.path.join('docs', 'results', 'adaptation.md'))
    parser.add_argument('--fresh', action='store_true')
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    base = resolve_data_root(OmegaConf.load(os.path.join(
        'training', 'configs', 'default.yaml')).data.base_dir)
    results = []
    for key in args.sequences:
        kind, root = SEQUENCES[key]
        work = os.path.join(args.work_dir, key)
        if args.fresh and os.path.isdir(work):
            subprocess.run(['rm', '-rf', work], check=True)
        os.makedirs(work, exist_ok=True)
        recording = os.path.join(base, root)
        dataset = build_source(recording_source(recording), None)
        split = time_split(len(dataset), None, args.test_share, args.gap_frames)
        test = list(range(split.val_start, split.count))
        indices = [test[int(i * len(test) / args.test_frames)]
                   for i in range(min(args.test_frames, len(test)))]
        cases = {}
        for case in args.cases:
            model = SHIPPED if case == 'shipped' else CASES[case](kind, root, args, work)
            out = adapted_model(model, case, recording, split.train_stop, args, work)
            rows = score({'unadapted': model, 'adapted': out}, dataset, indices, work)
            rows['model'] = model
            if os.path.isfile(out):
                rows['meta'] = read_contract(out).training['adaptation']
            cases[case] = rows
        shown = report_path(recording)
        shown = shown if os.path.isabs(shown) else f'../shared/{shown}'
        results.append({'sequence': shown, 'cases': cases,
                        'test': f'{split.val_start}-{split.count - 1}',
                        'given': f'0-{split.train_stop - 1}'})
        with open(os.path.join(work, 'results.json'), 'w') as stream:
            json.dump(results[-1], stream, indent=1)
    with open(args.report, 'w') as stream:
        stream.write('\n'.join(report_lines(results, args, argv)) + '\n')
    print('\n'.join(report_lines(results, args, argv)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
