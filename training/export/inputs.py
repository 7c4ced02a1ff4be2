"""What ``python -m training.export_onnx`` exports: the model and heads its arguments name.

``build_export_inputs`` builds the model from the config with a checked checkpoint (or the
seeded random initialisation), the segmentation head (a heads file, or an untrained linear
head of a label layout) and the completion head, and the provenance the contract records.
"""

import argparse
from typing import Any, Dict, List, Tuple

from training.checkpoint.completion import load_completion_head
from training.checkpoint.heads import load_heads_checkpoint
from training.checkpoint.model import build_checked_model, total_pretraining_steps
from training.data.label_layouts import get_layout
from training.data.shared_paths import report_path
from training.engine.config import load_config, to_plain
from training.export.contract import training_provenance
from training.models import VanishingDepth
from training.models.heads import build_seg_head


def _data_description(cfg: Dict[str, Any]) -> List[str]:
    """Describe the pretraining data sources of a config as 'type:root' strings."""
    sources = (cfg.get('data') or {}).get('sources') or []
    return [f'{source.get("type")}:{source.get("root")}' for source in sources]


def build_export_inputs(args: argparse.Namespace) -> Tuple[VanishingDepth, Any, dict]:
    """Build the model (checked checkpoint or random init) and the optional heads.

    Returns:
        ``(model, segmentation head or None, export_onnx keyword arguments)``; the completion
        head (or None) is the keyword ``completion_head``.
    """
    cfg = to_plain(load_config(args.config, args.overrides))
    model, checkpoint = build_checked_model(cfg['model'], args.checkpoint, args.seed)
    if checkpoint is not None:
        steps, chain = total_pretraining_steps(checkpoint)
        info = training_provenance(
            _data_description(checkpoint.config or {}) or 'see checkpoint', steps,
            checkpoint=report_path(args.checkpoint), checkpoint_step=checkpoint.step,
            warm_start_chain=chain[1:])
        if (checkpoint.config or {}).get('recovered_from'):  # training.export.recover
            info['recovered_from'] = checkpoint.config['recovered_from']
    else:
        info = training_provenance('none (random initialisation)', 0, checkpoint=None,
                                   seed=args.seed)
    head, class_names, class_colors = None, (), ()
    if args.heads:
        head, heads_info = load_heads_checkpoint(args.heads, model)
        class_names = tuple(heads_info['class_names'])
        class_colors = tuple(heads_info.get('class_colors') or ())
        info['heads'] = {'file': heads_info['path'], 'kind': heads_info['head_config']['kind'],
                         'head_config': heads_info['head_config'],
                         'layout': heads_info.get('layout'),
                         'training': heads_info.get('training'),
                         'metrics': heads_info.get('metrics')}
    elif args.untrained_head:
        class_names = get_layout(args.untrained_head).class_names
        head = build_seg_head('linear', model.feature_dim, len(class_names)).eval()
        info['heads'] = {'kind': 'linear', 'layout': args.untrained_head,
                         'training': 'none (random initialisation)'}
    completion = None
    if args.completion_head:
        completion, completion_info = load_completion_head(
            args.completion_head, model, checkpoint.step if checkpoint else None)
        info['completion_head'] = completion_info
    return model, head, {'class_names': class_names, 'class_colors': class_colors,
                         'trained': bool(args.checkpoint),
                         'training_info': info, 'completion_head': completion}
