"""Capture and restore the global random states in a ``torch.load(weights_only=True)`` form.

Python's ``random`` state becomes a list of ints, numpy's MT19937 state an int64 tensor plus
scalars, torch's CPU and CUDA states stay ByteTensors. The pretraining data and masks do not
depend on these global states (they are counter-seeded, see ``sample_stream`` and
``batch.step_seed``); they are saved so that anything else drawing from them (dropout,
drop-path, user code) also resumes exactly.
"""

import logging
import random
from typing import Dict

import numpy as np
import torch

_logger = logging.getLogger(__name__)


def capture_rng_state() -> Dict[str, object]:
    """Return python, numpy, torch and (if present) CUDA RNG states of this process."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        'python': {'version': version, 'state': list(mt_state), 'gauss': gauss},
        'numpy': {'kind': kind, 'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                  'has_gauss': int(has_gauss), 'cached': float(cached)},
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Dict[str, object]) -> None:
    """Restore states produced by ``capture_rng_state``.

    CUDA states are restored only when the device count matches (a warning otherwise).

    Args:
        state: The captured dict.
    """
    python = state['python']
    random.setstate((python['version'], tuple(python['state']), python['gauss']))
    numpy = state['numpy']
    np.random.set_state((numpy['kind'], numpy['keys'].numpy().astype(np.uint32), numpy['pos'],
                         numpy['has_gauss'], numpy['cached']))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        if len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state['cuda'])
        else:
            _logger.warning('not restoring CUDA RNG states: saved for %d devices, %d visible',
                            len(state['cuda']), torch.cuda.device_count())
