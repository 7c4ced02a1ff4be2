"""Descriptor-head checkpoints (``training/train_descriptors.py``): the checked reader.

The file holds ``format`` (``DESCRIPTOR_FORMAT``), ``step``, ``head`` (state dict),
``head_config``, ``encoder`` (``checkpoint`` and the weights' ``fingerprint``), the validation
rows (``val_history``) and the sources it trained on (``training_sources``), as
``training.train_descriptors`` writes them.
"""

from training.checkpoint.formats import DESCRIPTOR, load_checked
from training.checkpoint.heads import encoder_fingerprint
from training.models import VanishingDepth
from training.models.descriptor_head import build_descriptor_head, DescriptorHead


def load_descriptor_head(path: str, model: VanishingDepth) -> tuple[DescriptorHead, dict]:
    """Load a ``training.train_descriptors`` checkpoint trained on this model's encoder.

    Returns:
        (head in eval mode, the checkpoint dict).

    Raises:
        CheckpointFormatError: Not a descriptor-head checkpoint.
        ValueError: Trained on other encoder weights.
    """
    state = load_checked(path, DESCRIPTOR)
    if state['encoder']['fingerprint'] != encoder_fingerprint(model):
        raise ValueError(f'{path} was trained on other encoder weights '
                         f'({state["encoder"]["checkpoint"]})')
    head = build_descriptor_head(state['head_config'])
    head.load_state_dict(state['head'])
    return head.eval(), state
