"""Checkpoint files: atomic writes, the last N kept plus the best, safe loading.

A checkpoint is written to a temporary file in the target folder, flushed and fsync'ed, then
moved over the final name with ``os.replace`` (atomic on POSIX), so a crash or a kill leaves
either the old file or the new one, never half of one. Loading uses
``torch.load(weights_only=True)``: checkpoints hold only tensors, python scalars, strings,
lists, tuples and dicts (see ``training.engine.rng_state`` for the RNG states). What the files
hold is each format's business (``training.checkpoint.formats``).
"""

import glob
import logging
import math
import os
import re
import shutil
import tempfile
from typing import Any, Dict, List, Optional

import torch

_logger = logging.getLogger(__name__)

STEP_PATTERN = re.compile(r'step_(\d+)\.pt$')
BEST_NAME = 'best.pt'


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` through a temporary file in the same folder + ``os.replace``.

    Args:
        obj: Anything ``torch.save`` takes.
        path: Final file name.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix='.tmp_', suffix='.pt')
    try:
        with os.fdopen(handle, 'wb') as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    """Flush the folder entry so the rename survives a power loss (no-op where unsupported)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def load_checkpoint(path: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        path: Checkpoint file.
        map_location: Where tensors go.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    return torch.load(path, map_location=map_location, weights_only=True)


class CheckpointManager:
    """Writes ``step_XXXXXXXX.pt`` files, keeps the last ``keep_last`` and ``best.pt``.

    Attributes:
        directory: Folder of the checkpoints.
        keep_last: Number of step checkpoints kept (older ones are deleted).
        best_metric: Lowest metric seen so far (``inf`` before the first).
    """

    def __init__(self, directory: str, keep_last: int = 3):
        """Set up the folder.

        Args:
            directory: Folder of the checkpoints (created).
            keep_last: Step checkpoints to keep, >= 1.

        Raises:
            ValueError: ``keep_last`` < 1.
        """
        if keep_last < 1:
            raise ValueError(f'checkpoint keep_last must be >= 1, got {keep_last}')
        self.directory = directory
        self.keep_last = int(keep_last)
        self.best_metric = math.inf
        os.makedirs(directory, exist_ok=True)

    def step_files(self) -> List[str]:
        """Return the step checkpoints, oldest first."""
        files = [f for f in glob.glob(os.path.join(self.directory, 'step_*.pt'))
                 if STEP_PATTERN.search(f)]
        return sorted(files, key=lambda f: int(STEP_PATTERN.search(f).group(1)))

    def latest(self) -> Optional[str]:
        """Return the newest step checkpoint, or None."""
        files = self.step_files()
        return files[-1] if files else None

    @property
    def best_path(self) -> str:
        """Return the path of the best checkpoint (it may not exist yet)."""
        return os.path.join(self.directory, BEST_NAME)

    def save(self, state: Dict[str, Any], step: int, metric: Optional[float] = None) -> str:
        """Write the checkpoint of ``step``; update ``best.pt``; delete old step files.

        Args:
            state: The checkpoint dict.
            step: Optimiser step it belongs to.
            metric: Lower-is-better score; a new minimum makes this the best checkpoint.

        Returns:
            The path written.
        """
        path = os.path.join(self.directory, f'step_{step:08d}.pt')
        is_best = metric is not None and math.isfinite(metric) and metric < self.best_metric
        if is_best:
            self.best_metric = float(metric)
        state = dict(state, best_metric=self.best_metric)
        atomic_save(state, path)
        if is_best:
            self._publish_best(path)
            _logger.info('new best checkpoint (metric %.5f) at step %d', metric, step)
        for old in self.step_files()[:-self.keep_last]:
            os.remove(old)
        return path

    def _publish_best(self, path: str) -> None:
        """Make ``best.pt`` a hard link to (or, where links fail, a copy of) ``path``."""
        handle, temp = tempfile.mkstemp(dir=self.directory, prefix='.tmp_best_', suffix='.pt')
        os.close(handle)
        os.remove(temp)
        try:
            os.link(path, temp)
        except OSError:
            shutil.copyfile(path, temp)
        os.replace(temp, self.best_path)
