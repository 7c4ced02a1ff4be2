"""Which checkpoint a run resumes from: the ``resume`` setting of the training scripts.

``train.resume`` (pretraining) and ``completion.resume`` (completion head) take ``auto`` (the
newest step checkpoint of the run's folder; a fresh run when there is none), ``none`` (always
fresh) or a checkpoint path; ``training.train_descriptors --resume`` means ``auto``.
"""

from typing import Optional, Union

from training.checkpoint.files import CheckpointManager


def resume_path(choice: Union[str, bool, None], manager: CheckpointManager) -> Optional[str]:
    """Return the checkpoint to resume from, or None for a fresh run.

    Args:
        choice: ``'auto'`` for the newest step checkpoint of ``manager``, ``'none'`` (or
            None, False) for a fresh run, anything else is a checkpoint path.
        manager: The run's checkpoints.

    Returns:
        The path, or None.
    """
    if choice in (None, 'none', False):
        return None
    if choice == 'auto':
        return manager.latest()
    return str(choice)
