r"""Train segmentation heads on the frozen Vanishing Depth features and score them.

Usage::

    python -m training.train_heads [--checkpoint ckpt.pt] [--config extra.yaml] \\
        [--output-dir runs/heads] [--report docs/results/segmentation.md] [key=value ...]

Settings live in ``training/configs/heads.yaml`` (merged over ``default.yaml``). The encoder
and the adapter are frozen (paper.md section 6), so every training frame is encoded once and
its four fused token maps are cached (plus its horizontal mirror with ``heads.hflip``); each
head of ``heads.kinds`` then trains on the cache with AdamW and cross-entropy on logits
bilinearly upsampled to the model input. Frames are prepared exactly as the node prepares them
(``vd_ros.core.preprocess.prepare_inputs``: letterbox, nearest depth, PDE); labels follow with
nearest resizing, padding ignored. Evaluation mirrors the node too: logits -> camera resolution
(``labels_from_logits``) -> confusion matrix against the full-resolution label image ->
mIoU and pixel accuracy (``training.eval.segmentation_metrics``), next to a majority-class
baseline (the most frequent training class everywhere) and, with ``--checkpoint``, the same heads
trained on the random-init encoder (``heads.random_init_baseline``). ``heads.train`` and
``heads.eval`` are lists of sources like ``data.sources`` (roots relative to ``data.base_dir``,
``select`` ranges); the default split is YCB-Video videos 0000, 0001 and frames 1-10 of 0002 for
training, frames 11-20 of 0002 for evaluation. Reports name data relative to ``../shared``.
Each head is saved as ``<output-dir>/<kind>.pt`` for ``training.export_onnx --heads``.

Your own labels: ``heads.classes`` names a class-list file (names, optional colours) or a COCO
file, and the sources are ``labelled_folder`` (colour / depth / label PNGs) or ``coco``
(colour / depth files plus a COCO polygon file as CVAT and LabelMe export it); the class names
and colours travel into the heads file and from there into the exported model.
"""

import argparse
from dataclasses import dataclass
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from training.checkpoint.heads import save_heads_checkpoint
from training.checkpoint.model import build_checked_model
from training.data.datasets import build_source
from training.data.label_layouts import (class_file_layout, get_layout, IGNORE_LABEL,
                                         LabelLayout, load_label_map, remap_labels,
                                         training_labels)
from training.data.shared_paths import (command_text, report_path, resolve_data_root,
                                        source_text)
from training.engine.config import load_config_with_section
from training.engine.distributed import choose_device
from training.engine.divergence import NonFiniteGuard
from training.engine.progress import progress_bar
from training.engine.schedule import cosine_lambda
from training.eval.segmentation_metrics import (confusion_matrix, mean_iou, per_class_iou,
                                                pixel_accuracy)
from training.export.contract import model_contract, training_provenance
from training.models import VanishingDepth
from training.models.heads import build_seg_head, upsample_logits
from vd_ros.core.contract import ModelContract
from vd_ros.core.postprocess import labels_from_logits
from vd_ros.core.preprocess import Letterbox, prepare_inputs

_logger = logging.getLogger(__name__)

USER_LABEL_SOURCES = ('labelled_folder', 'coco')  # label ids defined by heads.classes
HEADS_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'heads.yaml')


def load_heads_config(files: List[str], overrides: List[str]) -> Dict[str, Any]:
    """Merge default.yaml, heads.yaml, extra YAML files and ``key=value`` overrides.

    Raises:
        ValueError: An unknown key or a bad override.
    """
    return load_config_with_section(HEADS_CONFIG, 'heads', files, overrides)


def heads_layout(hcfg: Dict[str, Any]) -> LabelLayout:
    """Return the layout the heads learn: ``heads.classes`` when set, else ``heads.layout``."""
    return class_file_layout(hcfg['classes']) if hcfg['classes'] else get_layout(hcfg['layout'])


def load_frames(sources: List[Dict[str, Any]], base_dir: str,
                class_names: Optional[Tuple[str, ...]] = None,
                class_colors: Optional[Tuple[Tuple[int, int, int], ...]] = None) -> List[dict]:
    """Read the labelled frames of a list of sources.

    Args:
        sources: Entries ``{type, root, select}`` as in ``data.sources`` (``select`` /
            ``exclude``: ``[start, stop(, step)]`` of the sorted frame list).
        base_dir: Folder relative roots resolve against (``data.base_dir``).
        class_names: The user's classes (``heads.classes``): ``coco`` sources map their
            category names to them, ``labelled_folder`` sources check their label values
            against them; None without a class file.
        class_colors: The class list's colours, with which ``labelled_folder`` sources read
            colour-coded label images; None without colours.

    Raises:
        ValueError: Not a non-empty list, a source without labels, or a ``coco`` or
            ``labelled_folder`` source without ``class_names``.
    """
    if not isinstance(sources, list) or not sources:
        raise ValueError(f'heads.train / heads.eval must be a non-empty list of sources '
                         f'({{type, root, select}}), got {sources!r}')
    samples = []
    for spec in sources:
        if spec.get('type') in USER_LABEL_SOURCES:
            if class_names is None:
                raise ValueError(f'{spec["type"]} source {spec.get("root")!r} needs '
                                 'heads.classes: a class-list file (or the COCO file itself)')
            spec = {**spec, 'class_names': list(class_names)}
            if spec['type'] == 'labelled_folder' and class_colors:
                spec['class_colors'] = [list(c) for c in class_colors]  # colour-coded labels
        dataset = build_source(spec, base_dir=base_dir)
        chosen = [dataset[index] for index in range(len(dataset))]
        if chosen and 'label' not in chosen[0]:
            raise ValueError(f'{spec["type"]} source {spec["root"]} has no label images')
        _logger.info('%d labelled frames from %s', len(chosen), source_text(spec, base_dir))
        samples += chosen
    return samples


def layout_labels(sample: dict, layout: LabelLayout, table: Optional[np.ndarray]) -> np.ndarray:
    """Return a sample's labels in the layout's ids, ignored ids set to ``IGNORE_LABEL``."""
    label = sample['label']
    if table is not None:
        label = remap_labels(label, table, sample['name'])
    return training_labels(label, layout, sample['name'])


def model_inputs(rgb: np.ndarray, depth_m: np.ndarray, labels: np.ndarray,
                 contract: ModelContract) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Letterbox]:
    """Prepare a frame as the node does; labels letterboxed with nearest, padding ignored.

    Returns:
        ``(rgb_in (1, 3, H, W), pde (1, C, H, W), labels (H, W) int64, letterbox)``.
    """
    rgb_in, pde, letterbox = prepare_inputs(rgb, depth_m, contract)
    shifted = letterbox.apply((labels - IGNORE_LABEL).astype(np.uint16), 'nearest')  # (H, W)
    inside = letterbox.apply(np.ones(labels.shape, np.uint8), 'nearest').astype(bool)
    model_labels = np.where(inside, shifted.astype(np.int64) + IGNORE_LABEL, IGNORE_LABEL)
    return rgb_in, pde, model_labels, letterbox


@torch.inference_mode()
def encode_maps(model: VanishingDepth, rgb_in: np.ndarray, pde: np.ndarray,
                device: torch.device) -> torch.Tensor:
    """Return the four fused token maps of one frame as a CPU tensor (4, D, h, w)."""
    features = model.encode(torch.from_numpy(rgb_in).to(device),
                            torch.from_numpy(pde).to(device))
    return torch.cat(features.maps, dim=0).float().cpu()  # (4, D, h, w)


def cache_training_features(model: VanishingDepth, samples: List[dict], layout: LabelLayout,
                            table: Optional[np.ndarray], contract: ModelContract, hflip: bool,
                            device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Encode every training frame (and its mirror) once.

    Returns:
        ``(maps (N, 4, D, h, w), labels (N, H, W) int64)``.
    """
    maps, labels = [], []
    for sample in progress_bar(samples, desc='encoding training frames', leave=False):
        rgb, depth, label = sample['rgb'], sample['depth'], layout_labels(sample, layout, table)
        views = [(rgb, depth, label)]
        if hflip:
            views.append((rgb[:, ::-1].copy(), depth[:, ::-1].copy(), label[:, ::-1].copy()))
        for view_rgb, view_depth, view_label in views:
            rgb_in, pde, model_labels, _ = model_inputs(view_rgb, view_depth, view_label,
                                                        contract)
            maps.append(encode_maps(model, rgb_in, pde, device))
            labels.append(torch.from_numpy(model_labels))
    return torch.stack(maps), torch.stack(labels)  # (N, 4, D, h, w), (N, H, W)


def train_head(head: nn.Module, maps: torch.Tensor, labels: torch.Tensor, steps: int,
               batch_size: int, lr: float, weight_decay: float, seed: int,
               device: torch.device, loss_stride: int = 1) -> List[float]:
    """Train a head on cached token maps with cross-entropy (``IGNORE_LABEL`` ignored).

    Args:
        head: The head (trained in place, left in eval mode).
        maps: (N, 4, D, h, w) cached maps.
        labels: (N, H, W) int64 labels in the model input grid.
        steps: Optimiser steps.
        batch_size: Frames per step (drawn without replacement per epoch).
        lr: AdamW learning rate (cosine decay to 0).
        weight_decay: AdamW weight decay.
        seed: Seed of the batch order.
        device: Where to train.
        loss_stride: Score every ``loss_stride``-th label pixel (the centre one of each
            ``s x s`` cell); the logits are upsampled to that grid. 1 = every pixel.

    Returns:
        The loss of every step.

    Raises:
        TrainingDiverged: On a non-finite loss (a ``FloatingPointError``, as before).
    """
    head.to(device).train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_lambda(steps))
    generator = torch.Generator().manual_seed(seed)
    guard = NonFiniteGuard(1)  # the first non-finite loss stops the run
    offset = loss_stride // 2
    labels = labels[:, offset::loss_stride, offset::loss_stride]  # (N, H / s, W / s)
    order, losses = torch.empty(0, dtype=torch.long), []
    for step in progress_bar(range(steps), desc=f'training {head.config["kind"]} head',
                             leave=False):
        if order.numel() < batch_size:
            order = torch.cat([order, torch.randperm(maps.shape[0], generator=generator)])
        batch, order = order[:batch_size], order[batch_size:]
        inputs = maps[batch].to(device)  # (B, 4, D, h, w)
        target = labels[batch].to(device)  # (B, H / s, W / s)
        logits = upsample_logits(head(list(inputs.unbind(1))), target.shape[-2:])  # (B, K, ., .)
        loss = F.cross_entropy(logits, target, ignore_index=IGNORE_LABEL)
        if not guard.record(bool(torch.isfinite(loss)), step, 'segmentation loss'):
            raise guard.error(step, f': segmentation loss {loss.item()}')
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


@torch.inference_mode()
def evaluate_heads(model: VanishingDepth, heads: Dict[str, nn.Module], samples: List[dict],
                   layout: LabelLayout, table: Optional[np.ndarray], contract: ModelContract,
                   majority: int, device: torch.device) -> Dict[str, np.ndarray]:
    """Score heads the way the node labels frames; also the majority-class baseline.

    Returns:
        Confusion matrix (K, K) per head name and ``'majority'``.
    """
    num = layout.num_classes
    matrices = {name: np.zeros((num, num), np.int64) for name in [*heads, 'majority']}
    for sample in progress_bar(samples, desc='evaluating', leave=False):
        target = layout_labels(sample, layout, table)  # (h, w) camera resolution
        rgb_in, pde, _, letterbox = model_inputs(sample['rgb'], sample['depth'], target,
                                                 contract)
        maps = list(encode_maps(model, rgb_in, pde, device).unsqueeze(1).to(device))
        for name, head in heads.items():
            logits = head.eval()(maps)[0].float().cpu().numpy()  # (K, h', w')
            predicted = labels_from_logits(logits, letterbox, np.int64)  # (h, w)
            matrices[name] += confusion_matrix(predicted, target, num, IGNORE_LABEL)
        matrices['majority'] += confusion_matrix(np.full_like(target, majority), target, num,
                                                 IGNORE_LABEL)
    return matrices


def summarize(matrix: np.ndarray, class_names: Tuple[str, ...]) -> Dict[str, Any]:
    """mIoU, pixel accuracy and the IoU of every class present in target or prediction."""
    ious = per_class_iou(matrix)
    return {'miou': mean_iou(matrix), 'pixel_accuracy': pixel_accuracy(matrix),
            'class_iou': {class_names[i]: float(v) for i, v in enumerate(ious)
                          if np.isfinite(v)},
            'eval_classes': [class_names[i] for i in np.nonzero(matrix.sum(axis=1))[0]]}


def report_markdown(results: Dict[str, Dict[str, Any]], settings: List[str],
                    provenance: str, command: str) -> str:
    """Render the results as a markdown page."""
    lines = ['# Segmentation: heads on the frozen Vanishing Depth features', '',
             f'**Model: {provenance}.**', '', f'Command: `{command}`', '',
             '| method | mIoU (%) | pixel acc. (%) | final train loss | train s |',
             '|---|---|---|---|---|']
    for name, result in results.items():
        loss = f'{result["final_loss"]:.3f}' if 'final_loss' in result else '-'
        seconds = f'{result["train_s"]:.0f}' if 'train_s' in result else '-'
        lines.append(f'| {name} | {100 * result["miou"]:.2f} | '
                     f'{100 * result["pixel_accuracy"]:.2f} | {loss} | {seconds} |')
    lines += ['', 'Per-class IoU (%) over the classes present in ground truth or prediction:', '']
    for name, result in results.items():
        ious = ', '.join(f'{k} {100 * v:.1f}' for k, v in result['class_iou'].items())
        lines.append(f'- {name}: {ious}')
    lines += ['', '## Settings', ''] + [f'- {line}' for line in settings] + ['']
    return '\n'.join(lines)


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', help='pretraining checkpoint (default: random init)')
    parser.add_argument('--config', action='append', default=[],
                        help='YAML merged over default.yaml + heads.yaml (repeatable)')
    parser.add_argument('--output-dir', default=os.path.join('runs', 'heads'))
    parser.add_argument('--report', help='write the results markdown here')
    parser.add_argument('overrides', nargs='*', help='config overrides key=value')
    return parser.parse_args(argv)


@dataclass
class HeadsRun:
    """What ``train_and_score`` produced for one encoder.

    Attributes:
        heads: Trained heads by kind (eval mode).
        results: Per row name (head kind and ``'majority'``): mIoU, pixel accuracy, class IoUs
            and, for heads, final loss and training seconds.
        label_counts: (K,) training label pixels per class (model input grid, mirrors included).
        views: Cached training views (frames, and their mirrors with ``heads.hflip``).
    """

    heads: Dict[str, nn.Module]
    results: Dict[str, Dict[str, Any]]
    label_counts: torch.Tensor
    views: int


def train_and_score(model: VanishingDepth, hcfg: Dict[str, Any], layout: LabelLayout,
                    table: Optional[np.ndarray], contract: ModelContract,
                    train_samples: List[dict], eval_samples: List[dict],
                    device: torch.device) -> HeadsRun:
    """Cache the training features of ``model``, train every head kind, score them.

    The majority-class row predicts the most frequent training class everywhere.
    """
    started = time.perf_counter()
    maps, labels = cache_training_features(model, train_samples, layout, table, contract,
                                           hcfg['hflip'], device)
    counts = torch.bincount(labels[labels != IGNORE_LABEL], minlength=layout.num_classes)
    _logger.info('cached %d views %s in %.0f s', maps.shape[0], tuple(maps.shape[1:]),
                 time.perf_counter() - started)
    heads, results = {}, {}
    for kind in hcfg['kinds']:
        extra = {'channels': hcfg['fpn_channels']} if kind == 'fpn' else {}
        torch.manual_seed(hcfg['seed'])
        head = build_seg_head(kind, model.feature_dim, layout.num_classes,
                              len(model.adapter.fusion_blocks), **extra)
        start = time.perf_counter()
        losses = train_head(head, maps, labels, hcfg['steps'], hcfg['batch_size'], hcfg['lr'],
                            hcfg['weight_decay'], hcfg['seed'], device, hcfg['loss_stride'])
        heads[kind] = head.eval()
        results[kind] = {'final_loss': float(np.mean(losses[-10:])),
                         'first_loss': losses[0], 'train_s': time.perf_counter() - start}
    matrices = evaluate_heads(model, heads, eval_samples, layout, table, contract,
                              int(torch.argmax(counts)), device)
    for name, matrix in matrices.items():
        results.setdefault(name, {}).update(summarize(matrix, layout.class_names))
    return HeadsRun(heads, results, counts, int(maps.shape[0]))


def run(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """Train and evaluate every configured head; write the heads files and the report.

    With ``--checkpoint`` and ``heads.random_init_baseline`` the same heads are also trained
    and scored on the randomly initialised encoder (same architecture and seed): rows
    ``<kind>, random-init encoder``.
    """
    cfg = load_heads_config(args.config, args.overrides)
    hcfg = cfg['heads']
    layout = heads_layout(hcfg)
    table = load_label_map(hcfg['label_map']) if hcfg['label_map'] else None
    device = choose_device(hcfg['device'])
    base_dir = resolve_data_root(cfg['data']['base_dir'])
    model, checkpoint = build_checked_model(cfg['model'], args.checkpoint, hcfg['seed'])
    model.to(device)
    if checkpoint is None:
        _logger.warning('training heads on a RANDOMLY INITIALISED encoder and adapter '
                        '(no --checkpoint): the numbers describe random features')
    contract = model_contract(model, hcfg['input_size'])
    started = time.perf_counter()
    user_classes = layout.class_names if hcfg['classes'] else None
    train_samples = load_frames(hcfg['train'], base_dir, user_classes, layout.class_colors)
    eval_samples = load_frames(hcfg['eval'], base_dir, user_classes, layout.class_colors)
    trained = train_and_score(model, hcfg, layout, table, contract, train_samples,
                              eval_samples, device)
    results = dict(trained.results)
    majority = results.pop('majority')
    if checkpoint is not None and hcfg['random_init_baseline']:
        random_model, _ = build_checked_model(cfg['model'], None, hcfg['seed'])
        baseline = train_and_score(random_model.to(device), hcfg, layout, table, contract,
                                   train_samples, eval_samples, device)
        results.update({f'{kind}, random-init encoder': baseline.results[kind]
                        for kind in baseline.heads})
    majority_class = layout.class_names[int(torch.argmax(trained.label_counts))]
    results[f'majority class ({majority_class})'] = majority
    provenance = (f'checkpoint {report_path(args.checkpoint)} (step {checkpoint.step})'
                  if checkpoint is not None else
                  f'random init (no checkpoint, seed {hcfg["seed"]}; RGB ViT random as well)')
    info = training_provenance(
        {'train': [source_text(s, base_dir) for s in hcfg['train']],
         'eval': [source_text(s, base_dir) for s in hcfg['eval']], 'layout': layout.name,
         'train_views': trained.views}, hcfg['steps'], encoder=provenance)
    for kind, head in trained.heads.items():
        save_heads_checkpoint(
            os.path.join(args.output_dir, f'{kind}.pt'), head, model,
            class_names=list(layout.class_names), layout=layout.name, ignore_id=layout.ignore_id,
            class_colors=[list(c) for c in layout.class_colors or ()],
            input_size=list(contract.input_size),
            encoder_checkpoint=report_path(args.checkpoint) if args.checkpoint else None,
            training=info, metrics={k: results[kind][k] for k in ('miou', 'pixel_accuracy')})
    for name, result in results.items():
        _logger.info('%s: mIoU %.2f %%, pixel accuracy %.2f %%', name, 100 * result['miou'],
                     100 * result['pixel_accuracy'])
    seen = [layout.class_names[i] for i in torch.nonzero(trained.label_counts).flatten()]
    if args.report:
        write_report(args, cfg, layout, results, provenance, seen, len(train_samples),
                     len(eval_samples), trained.views, time.perf_counter() - started)
    return results


def write_report(args: argparse.Namespace, cfg: Dict[str, Any], layout: LabelLayout,
                 results: Dict[str, Any], provenance: str, train_classes: List[str],
                 train_frames: int, eval_frames: int, views: int, seconds: float) -> None:
    """Write the markdown report of a run."""
    hcfg = cfg['heads']
    base_dir = resolve_data_root(cfg['data']['base_dir'])
    eval_classes = next(iter(results.values()))['eval_classes']
    unseen = [name for name in eval_classes if name not in train_classes]
    model = cfg['model']
    architecture = model['encoder'] + ''.join(f', {k}={v}'
                                              for k, v in model['timm_kwargs'].items())
    sources = {part: '; '.join(source_text(s, base_dir) for s in hcfg[part])
               for part in ('train', 'eval')}
    settings = [
        f'Encoder: {architecture}, frozen with its adapter; features = the 4 fused token maps.',
        f'Train: {train_frames} frames of {sources["train"]} ({views} views with hflip='
        f'{hcfg["hflip"]}); eval: {eval_frames} frames of {sources["eval"]} (paths relative '
        'to ../shared; select: [start, stop) of the sorted frame list).',
        f'Layout {layout.name} ({layout.num_classes} classes, id 0 '
        f'{"ignored" if layout.ignore_id == 0 else "scored"}).',
        f'Model input {hcfg["input_size"][0]}x{hcfg["input_size"][1]} via the node\'s '
        'letterbox/PDE; logits -> camera resolution bilinearly -> argmax (as the node), scored '
        'against the full-resolution label images.',
        f'Heads: linear = BN + 1x1 conv on the 4 concatenated maps; fpn = light FPN '
        f'({hcfg["fpn_channels"]} channels, strides p/4..2p). AdamW lr {hcfg["lr"]}, wd '
        f'{hcfg["weight_decay"]}, cosine, {hcfg["steps"]} steps of batch {hcfg["batch_size"]}, '
        f'seed {hcfg["seed"]}; cross-entropy on every {hcfg["loss_stride"]}-th label pixel '
        '(cell centres) against bilinearly upsampled logits.',
        'mIoU averages the classes present in ground truth or prediction (confusion matrix over '
        'all eval pixels); the majority-class row predicts the most frequent training class '
        'everywhere.',
        f'Classes in the training labels: {", ".join(train_classes)}; in the evaluation '
        f'labels: {", ".join(eval_classes)}; evaluation classes never seen in training (IoU '
        f'necessarily 0): {", ".join(unseen) or "none"}.',
        f'Wall time {seconds:.0f} s on this machine ({choose_device(hcfg["device"])}).',
    ]
    command = command_text('python -m training.train_heads', sys.argv[1:]) \
        if sys.argv[0].endswith('train_heads.py') else 'training.train_heads.run(...)'
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with open(args.report, 'w', encoding='utf-8') as stream:
        stream.write(report_markdown(results, settings, provenance, command))
    _logger.info('wrote %s', args.report)


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    run(parse_args(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == '__main__':
    sys.exit(main())
