"""Every checkpoint format of vd_ros, and the one load that checks a file's format.

Each file training writes names its format in the key ``format``:

================================  ===========================================================
``PRETRAIN_FORMAT``               ``vd_ros.pretrain/1``: a pretraining checkpoint
                                  (``training/train.py``; also its float16 weights-only copy,
                                  ``training.checkpoint.weights``, and ``pretrain.pt`` recovered
                                  from a model file, ``training.export.recover``)
``COMPLETION_FORMAT``             ``vd_ros.completion/1``: a completion-head checkpoint
                                  (``training/train_completion.py``, ``training/adapt.py``,
                                  recovered ``completion_head.pt``)
``HEADS_FORMAT``                  ``vd_ros-seg-head-1``: a segmentation heads file
                                  (``training/train_heads.py``, recovered ``<kind>.pt``)
================================  ===========================================================

:func:`load_checked` reads a file (``torch.load(weights_only=True)``) and refuses one of
another format with the same message for every format: the file, the format expected, what
was found and what writes the expected kind. The keys of each format are documented by its
writer: ``training.checkpoint.pretrain``, ``training.checkpoint.completion`` and
``training.checkpoint.heads``.
"""

import dataclasses
from typing import Any, Dict, Mapping, Type

from training.checkpoint.files import load_checkpoint

PRETRAIN_FORMAT = 'vd_ros.pretrain/1'
COMPLETION_FORMAT = 'vd_ros.completion/1'
HEADS_FORMAT = 'vd_ros-seg-head-1'


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model its config builds (or is not a checkpoint)."""


class HeadsMismatchError(ValueError):
    """A heads file does not belong to the model it is put on."""


class CheckpointFormatError(CheckpointMismatchError):
    """A file is not a checkpoint of the format its reader expects."""


class HeadsFormatError(CheckpointFormatError, HeadsMismatchError):
    """A file given as a heads file is not one."""


@dataclasses.dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint format.

    Attributes:
        name: The value of the file's ``format`` key.
        what: What such a file is, for messages.
        writer: What writes such a file, for messages.
        error: The exception a file of another format raises.
    """

    name: str
    what: str
    writer: str
    error: Type[CheckpointFormatError] = CheckpointFormatError


PRETRAIN = CheckpointFormat(PRETRAIN_FORMAT, 'pretraining checkpoint',
                            'training/train.py (or training.onnx_recover from a model file)')
COMPLETION = CheckpointFormat(COMPLETION_FORMAT, 'completion-head checkpoint',
                              'training/train_completion.py')
HEADS = CheckpointFormat(HEADS_FORMAT, 'segmentation heads file', 'training/train_heads.py',
                         HeadsFormatError)
FORMATS = (PRETRAIN, COMPLETION, HEADS)


def describe(state: Any) -> str:
    """Say what a loaded file holds, for a format error."""
    if not isinstance(state, Mapping):
        return f'a {type(state).__name__}, not a checkpoint dict'
    found = state.get('format')
    for known in FORMATS:
        if found == known.name:
            return f'a {known.what} ({found})'
    return 'no format key' if found is None else f'format {found!r}'


def check_format(state: Any, path: str, expected: CheckpointFormat) -> Dict[str, Any]:
    """Return ``state`` if it is a checkpoint of the ``expected`` format.

    Args:
        state: What ``torch.load`` returned.
        path: The file, for the message.
        expected: The format the reader needs.

    Raises:
        CheckpointFormatError: (``expected.error``) naming the file, the expected format, what
            was found and what writes the expected kind.
    """
    if isinstance(state, Mapping) and state.get('format') == expected.name:
        return state
    raise expected.error(f'{path}: not a {expected.what} (format {expected.name}): found '
                         f'{describe(state)}; write one with {expected.writer}')


def load_checked(path: str, expected: CheckpointFormat,
                 map_location: Any = 'cpu') -> Dict[str, Any]:
    """Load a checkpoint file and check its format (:func:`check_format`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointFormatError: See :func:`check_format`.
    """
    return check_format(load_checkpoint(path, map_location), path, expected)
