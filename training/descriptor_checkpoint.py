"""Descriptor head checkpoints (``training/train_descriptors.py``): loading with checks."""

from training.engine.checkpoint import load_checkpoint
from training.heads_checkpoint import encoder_fingerprint
from training.models import VanishingDepth
from training.models.descriptor_head import (build_descriptor_head, DESCRIPTOR_FORMAT,
                                             DescriptorHead)


def load_descriptor_head(path: str, model: VanishingDepth) -> tuple[DescriptorHead, dict]:
    """Load a ``training.train_descriptors`` checkpoint trained on this model's encoder.

    Returns:
        (head in eval mode, the checkpoint dict).

    Raises:
        ValueError: Not a descriptor checkpoint, or trained on other encoder weights.
    """
    state = load_checkpoint(path)
    if state.get('format') != DESCRIPTOR_FORMAT:
        raise ValueError(f'{path}: not a {DESCRIPTOR_FORMAT} checkpoint')
    if state['encoder']['fingerprint'] != encoder_fingerprint(model):
        raise ValueError(f'{path} was trained on other encoder weights '
                         f'({state["encoder"]["checkpoint"]})')
    head = build_descriptor_head(state['head_config'])
    head.load_state_dict(state['head'])
    return head.eval(), state
