"""GPU figures of vd_ros in one run: inference latency and pretraining throughput + MFU.

Run from the repository root on a GPU machine (needs only torch, timm, numpy and PyYAML, which
timm brings; no onnxruntime, no omegaconf, no network)::

    python tools/gpu_check.py                      # writes docs/results/gpu.md, < 9 minutes
    python tools/gpu_check.py --dry-run --out /tmp/gpu.md   # CPU, tiny sizes, seconds

It measures, for VD-S (ViT-S/14 RGB + depth branches, ``training/configs/default.yaml``) and
the CPU preset (``training/configs/cpu.yaml``):

- inference latency at batch 1 at 336x448 and at the preset's 126x168: torch eager fp32,
  eager bf16 (autocast) and ``torch.compile`` with bf16; the forward the ONNX export runs
  (features and the decoder's depth), random weights (latency does not depend on them);
- pretraining images/s and MFU at batch 64 and 128, bf16, compile off and on, at each model's
  training size: the GPU side of one optimiser step of ``training/train.py`` (depth
  randomisation, masks, PDE, forward, multi-scale SI loss, backward, clipping, fused AdamW) on
  a synthetic batch already on the GPU, so data loading is not included. FLOPs are measured
  with ``FlopCounterMode`` (``training.engine.flops``), the peak comes from its table.

Items run in order of importance and a time budget (``--budget-s``, default 420 s) skips what
would not fit; skipped items are listed in the report. The report holds device, versions and
every figure.
"""

import argparse
import datetime
import math
import os
import platform
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from training.data.masking import NoiseShift  # noqa: E402
from training.engine.batch import PretrainBatchBuilder  # noqa: E402
from training.engine.flops import measure_flops, peak_flops  # noqa: E402
from training.losses import MultiScaleSILogLoss  # noqa: E402
from training.models import build_model, positional_depth_encoding  # noqa: E402

CONFIGS = os.path.join(ROOT, 'training', 'configs')
MODELS = {'VD-S': [], 'CPU preset': [os.path.join(CONFIGS, 'cpu.yaml')]}
INFERENCE_SIZES = ((336, 448), (126, 168))
BATCHES = (64, 128)
DRY_RUN_MODEL = {'timm_kwargs': {'depth': 2, 'embed_dim': 64, 'num_heads': 2},
                 'img_size': [28, 28]}
INFERENCE_MODES = {False: (('eager fp32', False), ('eager bf16', True)),
                   True: (('torch.compile bf16', True),)}
COMPILE_RESERVE_S = 100.0  # a compile item starts only with this much budget left


def load_sections(files) -> dict:
    """Return default.yaml merged with ``files`` as plain dicts, ``${a.b}`` references resolved.

    Uses ``training.engine.config`` when omegaconf is installed, else PyYAML (a dependency of
    timm) with a resolver for the plain ``${section.key}`` references the sections hold.
    """
    try:
        from training.engine.config import load_config, to_plain
        return to_plain(load_config(files))
    except ImportError:
        import yaml
    merged = {}
    for path in [os.path.join(CONFIGS, 'default.yaml'), *files]:
        with open(path) as stream:
            _merge_into(merged, yaml.safe_load(stream))
    return _resolve(merged, merged)


def _merge_into(base: dict, layer: dict) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = value


def _resolve(node, root):
    """Replace strings ``${a.b.c}`` by the value at that path of ``root`` (others kept)."""
    if isinstance(node, dict):
        return {key: _resolve(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, root) for value in node]
    if isinstance(node, str) and node.startswith('${') and node.endswith('}') and \
            ':' not in node:
        value = root
        for key in node[2:-1].split('.'):
            value = value[key]
        return _resolve(value, root)
    return node


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed_ms(function, device, warmup: int, repeats: int) -> np.ndarray:
    """Call ``function`` ``warmup`` times, then time ``repeats`` calls; return ms per call."""
    for _ in range(warmup):
        function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e3


def compiled(module, dry_run: bool):
    """``torch.compile`` (inductor); the dry run traces with the eager backend (no codegen)."""
    torch.compiler.reset()
    return torch.compile(module, backend='eager' if dry_run else 'inductor')


def inference_rows(name, sections, sizes, args, device, compile_it: bool):
    """Yield (label, row): inference latency of one model at every size, eager or compiled."""
    model = build_model(sections['model']).to(device).eval()
    for height, width in sizes:
        rgb = torch.rand(1, 3, height, width, device=device)
        depth = 0.5 + 4.0 * torch.rand(1, height, width, device=device)
        pde = positional_depth_encoding(depth, model.pde_config)

        def forward(module, bf16):
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16,
                                                        enabled=bf16):
                module(rgb, pde)

        for mode, bf16 in INFERENCE_MODES[compile_it]:
            label = f'inference {name} {height}x{width} {mode}'
            if compile_it and args.remaining() < COMPILE_RESERVE_S:
                yield label, None
                continue
            module = compiled(model, args.dry_run) if compile_it else model
            start = time.perf_counter()
            forward(module, bf16)  # compiles, when compiling
            synchronize(device)
            first_s = time.perf_counter() - start
            times = timed_ms(lambda: forward(module, bf16), device, args.warmup, args.repeats)
            yield label, {'model': name, 'size': f'{height}x{width}', 'mode': mode,
                          'p50_ms': float(np.median(times)),
                          'p90_ms': float(np.percentile(times, 90)), 'first_call_s': first_s}


def training_rows(name, sections, batches, args, device, compile_it: bool):
    """Yield (label, row): pretraining throughput of one model at every batch size."""
    size = sections['data']['transform']['size']
    height, width = (size, size) if isinstance(size, int) else size
    if args.dry_run:
        height, width = 28, 28
    torch.manual_seed(0)
    core = build_model(sections['model']).to(device).train()
    shift = sections['masking']['noise_shift']
    builder = PretrainBatchBuilder(
        core.pde_config, NoiseShift.from_fractions(
            1000, shift['warmup_fraction'], shift['end_fraction'], mu=tuple(shift['mu']),
            sigma=tuple(shift['sigma']), clip=tuple(shift['clip'])),
        sections['depth'], sections['masking'])
    loss_fn = MultiScaleSILogLoss(**sections['loss'])
    params = core.trainable_parameters()
    optim = sections['optim']
    optimizer = torch.optim.AdamW(params, lr=optim['lr'], betas=tuple(optim['betas']),
                                  fused=device.type == 'cuda' or None)
    generator = torch.Generator(device=device).manual_seed(0)
    peak = peak_flops(device)
    for batch_size in batches:
        depth = 0.5 + 4.0 * torch.rand(batch_size, 1, height, width, device=device)
        batch = {'rgb': torch.rand(batch_size, 3, height, width, device=device),
                 'depth': depth, 'valid': torch.ones_like(depth, dtype=torch.bool)}

        def step(model):
            # The GPU side of training.train.train_step (one micro-step, no NaN guard).
            inputs = builder.train_inputs(batch, 500, generator, device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, torch.bfloat16):
                depths = model(inputs.rgb, inputs.pde)['depths']
            loss_fn(depths, inputs.target, inputs.removed).loss.backward()
            torch.nn.utils.clip_grad_norm_(params, sections['train']['grad_clip'] or math.inf)
            optimizer.step()

        label = (f'pretraining {name} {height}x{width} batch {batch_size} bf16 '
                 f'compile {"on" if compile_it else "off"}')
        if args.remaining() < (COMPILE_RESERVE_S if compile_it else 20.0):
            yield label, None
            continue
        flops = measure_flops(lambda: step(core))
        model = compiled(core, args.dry_run) if compile_it else core
        start = time.perf_counter()
        step(model)
        synchronize(device)
        first_s = time.perf_counter() - start
        times = timed_ms(lambda: step(model), device, args.warmup, args.repeats)
        step_s = float(np.median(times)) / 1e3
        yield label, {'model': name, 'size': f'{height}x{width}', 'batch': batch_size,
                      'compile': 'on' if compile_it else 'off',
                      'images_per_s': batch_size / step_s, 'step_ms': step_s * 1e3,
                      'gflop_per_image': flops / batch_size / 1e9,
                      'mfu': flops / step_s / peak if peak else None, 'first_call_s': first_s}


def environment(device: torch.device) -> list:
    """Return report lines: device, versions, date."""
    import timm
    lines = [f'- date (UTC): {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}',
             f'- python {platform.python_version()}, torch {torch.__version__}, timm '
             f'{timm.__version__}, numpy {np.__version__}']
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        lines += [f'- device: {torch.cuda.get_device_name(device)} '
                  f'({props.total_memory / 2 ** 30:.0f} GiB), CUDA {torch.version.cuda}, cuDNN '
                  f'{torch.backends.cudnn.version()}',
                  f'- MFU peak: {peak_flops(device) or "unknown device: not reported"} FLOP/s '
                  '(dense bf16, training.engine.flops.PEAK_FLOPS)']
    else:
        lines.append(f'- device: CPU ({os.cpu_count()} cores): a dry run, not GPU figures')
    return lines


def _percent(share) -> str:
    return 'n/a' if share is None else f'{100 * share:.1f} %'


def write_report(path: str, device, inference: list, training: list, skipped: list,
                 args, total_s: float) -> None:
    """Write the markdown report."""
    title = 'DRY RUN on CPU (tiny model, tiny sizes): checks the script, not a result' \
        if args.dry_run else 'GPU figures'
    lines = [f'# {title}', '', f'Generated by `python tools/gpu_check.py'
             f'{" --dry-run" if args.dry_run else ""}` in {total_s:.0f} s.', '',
             *environment(device), '',
             '## Inference latency, batch 1 (random weights; features + decoder depth)', '',
             '| model | input | mode | p50 ms | p90 ms | first call s |',
             '|---|---|---|---:|---:|---:|']
    lines += [f'| {r["model"]} | {r["size"]} | {r["mode"]} | {r["p50_ms"]:.2f} | '
              f'{r["p90_ms"]:.2f} | {r["first_call_s"]:.1f} |' for r in inference]
    lines += ['', '## Pretraining throughput (GPU side of one optimiser step, bf16; synthetic '
              'batch on the GPU, no data loading)', '',
              '| model | input | batch | compile | images/s | step ms | GFLOP/image | MFU | '
              'first step s |', '|---|---|---:|---|---:|---:|---:|---:|---:|']
    lines += [f'| {r["model"]} | {r["size"]} | {r["batch"]} | {r["compile"]} | '
              f'{r["images_per_s"]:.1f} | {r["step_ms"]:.1f} | {r["gflop_per_image"]:.2f} | '
              f'{_percent(r["mfu"])} | '
              f'{r["first_call_s"]:.1f} |' for r in training]
    if skipped:
        lines += ['', f'Skipped to stay within the {args.budget_s:.0f} s budget: ' +
                  '; '.join(skipped) + '.']
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as stream:
        stream.write('\n'.join(lines) + '\n')


def main(argv=None) -> int:
    """Measure everything that fits in the budget and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.path.join(ROOT, 'docs', 'results', 'gpu.md'))
    parser.add_argument('--budget-s', type=float, default=420.0)
    parser.add_argument('--dry-run', action='store_true',
                        help='CPU, tiny model and sizes, compile with the eager backend')
    args = parser.parse_args(argv)
    started = time.monotonic()
    args.remaining = lambda: args.budget_s - (time.monotonic() - started)
    device = torch.device('cpu' if args.dry_run else 'cuda')
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('no CUDA device: run on a GPU machine, or --dry-run on CPU')
    args.warmup, args.repeats = (0, 1) if args.dry_run else (5, 30)
    if args.dry_run:
        torch.set_num_threads(1)  # tiny work: more threads only spin against each other
    if device.type == 'cuda':  # as training on a GPU does (fp32 matmuls on tensor cores)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    sections = {name: load_sections(files) for name, files in MODELS.items()}
    if args.dry_run:
        for section in sections.values():
            section['model'] = {**section['model'], **DRY_RUN_MODEL}
    sizes = ((28, 42),) if args.dry_run else INFERENCE_SIZES
    batches = (2,) if args.dry_run else BATCHES
    inference, training, skipped = [], [], []
    # Everything eager first (seconds), then the compiled variants (a minute or more each).
    plan = [(rows, function(name, sections[name], shapes, args, device, compile_it))
            for compile_it in (False, True)
            for rows, function, name, shapes in (
                (training, training_rows, 'VD-S', batches),
                (inference, inference_rows, 'VD-S', sizes),
                (inference, inference_rows, 'CPU preset', sizes),
                (training, training_rows, 'CPU preset', batches))]
    for rows, items in plan:
        for label, row in items:
            print(f'{time.monotonic() - started:6.0f} s  {label}: '
                  f'{"skipped (budget)" if row is None else row}', flush=True)
            (skipped.append(label) if row is None else rows.append(row))
    write_report(args.out, device, inference, training, skipped, args,
                 time.monotonic() - started)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
