"""The non-finite step guard every training loop uses, and the error it raises.

``NonFiniteGuard`` counts the steps skipped for a non-finite loss or gradient (in total and in
a row) in a mapping with the keys ``nonfinite_total`` and ``consecutive_nonfinite``, the names
the checkpoint formats save them under. A loop records each step's outcome, and when
``diverged`` (``limit`` skipped steps in a row) it writes its checkpoint and raises
``guard.error(step)``.
"""

import logging
from typing import MutableMapping, Optional

_logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError, FloatingPointError):
    """Raised after ``train.max_consecutive_nonfinite`` non-finite steps in a row.

    A ``RuntimeError`` (what the pretraining and completion loops raised) and a
    ``FloatingPointError`` (what the segmentation heads' trainer raised).
    """


def fresh_counts() -> dict:
    """Return zeroed non-finite step counts."""
    return {'nonfinite_total': 0, 'consecutive_nonfinite': 0}


class NonFiniteGuard:
    """Count skipped non-finite steps; a run diverges after ``limit`` of them in a row.

    Attributes:
        limit: Skipped steps in a row that stop the run (None: never).
        counts: ``nonfinite_total`` and ``consecutive_nonfinite`` (updated in place: pass the
            mapping a checkpoint saves).
    """

    def __init__(self, limit: Optional[int],
                 counts: Optional[MutableMapping[str, int]] = None):
        """Guard a run.

        Args:
            limit: Skipped steps in a row that stop the run (None: never).
            counts: Where the counts live (fresh zeroed counts when None).
        """
        self.limit = limit
        self.counts = fresh_counts() if counts is None else counts

    @property
    def total(self) -> int:
        """Return the steps skipped so far."""
        return self.counts['nonfinite_total']

    @property
    def in_a_row(self) -> int:
        """Return the steps skipped in a row up to now."""
        return self.counts['consecutive_nonfinite']

    def record(self, finite: bool, step: int, what: str = 'loss or gradient') -> bool:
        """Count one step's outcome; warn about a skipped one; return ``finite``.

        Args:
            finite: The step's loss and gradient were finite (the update was made).
            step: The step (for the warning).
            what: What was non-finite (for the warning).
        """
        if finite:
            self.counts['consecutive_nonfinite'] = 0
            return True
        self.counts['nonfinite_total'] += 1
        self.counts['consecutive_nonfinite'] += 1
        _logger.warning('step %d skipped: non-finite %s (%d in a row, %d in total)', step, what,
                        self.in_a_row, self.total)
        return False

    @property
    def diverged(self) -> bool:
        """Return True once ``limit`` steps in a row were skipped."""
        return self.limit is not None and self.in_a_row >= self.limit

    def error(self, step: int, detail: str = '') -> TrainingDiverged:
        """Log and return the ``TrainingDiverged`` that stops the run at ``step``.

        Args:
            step: The last step (0-based, as the warnings name it).
            detail: Appended to the message (what the loop knows: the last checkpoint).
        """
        message = (f'stopping: {self.in_a_row} consecutive steps with a non-finite loss or '
                   f'gradient (up to step {step}){detail}')
        _logger.error(message)
        return TrainingDiverged(message)
