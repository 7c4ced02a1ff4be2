"""Segmentation heads files (``vd_ros-seg-head-1``): the writer and the checked reader.

A heads file (``<kind>.pt``) holds a head's weights, class names, provenance and encoder
fingerprint. A head is only meaningful on the features it was trained on, so the file records
a fingerprint (SHA-256) of the frozen encoder + adapter weights; :func:`load_heads_checkpoint`
refuses to put the head on a model whose fingerprint differs (another checkpoint, another
random seed).
Keys: ``format``, ``head_config`` (``build_seg_head`` arguments), ``head`` (state dict),
``class_names``, ``class_colors`` (``[r, g, b]`` per class, empty without colours), ``layout``,
``ignore_id``, ``input_size``, ``encoder``,
``encoder_fingerprint``, ``encoder_checkpoint``, ``model_config``, ``training`` (data, steps,
date, git revision), ``metrics``.
"""

import hashlib
import logging
from typing import Any, Dict, Tuple

import torch
from torch import nn

from training.checkpoint.files import atomic_save
from training.checkpoint.formats import HEADS, HEADS_FORMAT, HeadsMismatchError, load_checked
from training.data.shared_paths import report_path
from training.models.heads import build_seg_head

_logger = logging.getLogger(__name__)


def encoder_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the encoder and adapter weights of a ``VanishingDepth`` (decoder excluded).

    Args:
        model: The model.

    Returns:
        Hex digest; equal digests mean bit-identical features for equal inputs.
    """
    digest = hashlib.sha256()
    for prefix, part in (('encoder.', model.encoder), ('adapter.', model.adapter)):
        for name, tensor in sorted(part.state_dict().items()):
            digest.update((prefix + name + str(tuple(tensor.shape))).encode())
            digest.update(tensor.detach().to('cpu', torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_heads_checkpoint(path: str, head: nn.Module, model: nn.Module, **fields: Any) -> None:
    """Write a heads file atomically.

    Args:
        path: Output file.
        head: The trained head (``head.config`` rebuilds it).
        model: The ``VanishingDepth`` whose features it was trained on.
        **fields: ``class_names``, ``class_colors``, ``layout``, ``ignore_id``,
            ``input_size``, ``encoder_checkpoint``, ``training``, ``metrics``.
    """
    state = {
        'format': HEADS_FORMAT,
        'head_config': dict(head.config),
        'head': {key: value.detach().cpu() for key, value in head.state_dict().items()},
        'encoder': model.encoder_name,
        'encoder_fingerprint': encoder_fingerprint(model),
        'model_config': model.config,
        **fields,
    }
    if len(state.get('class_names', ())) != head.num_classes:
        raise ValueError(f'{len(state.get("class_names", ()))} class names for a head with '
                         f'{head.num_classes} classes')
    colors = state.get('class_colors') or ()
    if colors and len(colors) != head.num_classes:
        raise ValueError(f'{len(colors)} class colours for a head with {head.num_classes} '
                         'classes')
    atomic_save(state, path)
    _logger.info('wrote %s head (%d classes) to %s', head.config['kind'], head.num_classes, path)


def load_heads_checkpoint(path: str, model: nn.Module) -> Tuple[nn.Module, Dict[str, Any]]:
    """Rebuild a head for ``model`` from a heads file.

    Args:
        path: The heads file.
        model: The ``VanishingDepth`` the head will run on.

    Returns:
        ``(head in eval mode, the file's dict without the weights)``.

    Raises:
        FileNotFoundError: Missing file.
        HeadsMismatchError: Not a heads file (``HeadsFormatError``), or trained on other
            features (feature width or encoder/adapter weights differ), naming the file and
            both sides.
    """
    state = load_checked(path, HEADS)
    config = dict(state['head_config'])
    if config['feature_dim'] != model.feature_dim:
        raise HeadsMismatchError(
            f'{path}: head reads {config["feature_dim"]}-dim features, the model '
            f'{model.encoder_name} has {model.feature_dim}')
    fingerprint = encoder_fingerprint(model)
    trained_on = state['encoder_fingerprint']
    if trained_on != fingerprint:
        raise HeadsMismatchError(
            f'{path}: head was trained on encoder/adapter weights {trained_on[:12]} (checkpoint '
            f'{state.get("encoder_checkpoint")!r}), the model being exported has '
            f'{fingerprint[:12]}; export with the same --checkpoint (or, for random init, the '
            'same --seed and config) as train_heads used')
    head = build_seg_head(**config)
    head.load_state_dict(state['head'], strict=True)
    info = {key: value for key, value in state.items() if key != 'head'}
    info['path'] = report_path(path)
    return head.eval(), info
