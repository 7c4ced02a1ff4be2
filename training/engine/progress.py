"""Where a training run stands, its progress bar and its running loss: one of each for every loop.

``Progress`` is the position every loop saves in its checkpoints (each format picks the fields
it stores: the pretraining format its step, sample count and counters; the completion-head
format the flat ``state()``); ``progress_bar`` is the one bar style; ``finite_mean`` is the
loss a log line reports (skipped steps left out).
"""

from dataclasses import dataclass, field
import math
from typing import Any, Dict, Iterable, List, Optional

import numpy as np
from tqdm import tqdm

from training.engine.divergence import fresh_counts


@dataclass
class Progress:
    """How far a run is (saved in every checkpoint).

    Attributes:
        step: Optimiser steps done (skipped ones included).
        consumed: Samples of the stream drawn so far (this rank's).
        elapsed_s: Training wall time so far, over resumes (time-budgeted loops).
        counters: The ``NonFiniteGuard``'s counts (``nonfinite_total``,
            ``consecutive_nonfinite``) and any the loop adds.
        val_history: Validation rows with their step.
    """

    step: int = 0
    consumed: int = 0
    elapsed_s: float = 0.0
    counters: Dict[str, int] = field(default_factory=fresh_counts)
    val_history: List[Dict[str, float]] = field(default_factory=list)

    def state(self) -> Dict[str, Any]:
        """Return the flat checkpoint entry: step, consumed, time and counts."""
        return {'step': self.step, 'consumed': self.consumed, 'elapsed_s': self.elapsed_s,
                **self.counters}

    @classmethod
    def from_state(cls, state: Dict[str, Any],
                   val_history: Iterable[Dict[str, float]] = ()) -> 'Progress':
        """Rebuild a ``Progress`` from ``state()``'s entry (and the saved validation rows)."""
        saved = dict(state)
        counters = {key: saved.pop(key) for key in fresh_counts()}
        return cls(**saved, counters=counters, val_history=list(val_history))


def progress_bar(iterable: Optional[Iterable] = None, *, total: Optional[int] = None,
                 initial: int = 0, unit: str = 'it', desc: Optional[str] = None,
                 enabled: bool = True, leave: bool = True) -> tqdm:
    """Return the progress bar every loop shows (a ``tqdm`` fitted to the terminal width).

    Args:
        iterable: What to iterate over (None: update the bar by hand).
        total: The bar's end.
        initial: Where it starts (a resumed run).
        unit: What it counts (``step``, ``s``).
        desc: Its label.
        enabled: Show it (False: a silent bar, as on ranks other than 0).
        leave: Keep it on screen when done.
    """
    return tqdm(iterable, total=total, initial=initial, unit=unit, desc=desc,
                disable=not enabled, leave=leave, dynamic_ncols=True)


def finite_mean(values: Iterable[float]) -> float:
    """Return the mean of the finite values (NaN when there is none)."""
    finite = [value for value in values if math.isfinite(value)]
    return float(np.mean(finite)) if finite else math.nan
