"""Swap the running model for another file without restarting the node.

``ros2 param set /vd_perception model_path NEW.onnx`` (an adapted model from ``vd_ros_adapt``,
say) loads the new file while the old one keeps serving frames; only a file that loads, passes
the contract and publishes the same outputs is accepted, and the swap happens between two
frames. A refusal names the reason and the node keeps its model. A model with other outputs
(with or without segmentation) needs new publishers: a lifecycle cleanup and configure.
"""

import os
from typing import Callable, Optional

from vd_ros.core.contract import ContractError
from vd_ros.inference import ModelLoadError, VDModel


class ModelReload:
    """Stages a new model in the parameter check and swaps it in when the change is applied.

    Attributes:
        staged: The loaded model waiting for the swap, or None.
    """

    def __init__(self, current: Callable[[], Optional[VDModel]],
                 load: Callable[[str], VDModel], swap: Callable[[VDModel], None]):
        """Store how to read, load and install a model.

        Args:
            current: Returns the running model (None while unconfigured).
            load: Loads a file with the node's providers and threads.
            swap: Installs a loaded model.
        """
        self._current, self._load, self._swap = current, load, swap
        self.staged = None

    def check(self, path: str) -> str:
        """Load ``path``; return why it cannot replace the running model ('' = it can)."""
        self.staged = None
        running = self._current()
        if running is None:  # unconfigured: the next configure loads it
            return ''
        if not path:
            return 'model_path must name an ONNX model file'
        try:
            model = self._load(os.path.expanduser(path))
        except (ModelLoadError, ContractError, ValueError) as error:
            return f'cannot load {path}: {error}'
        before = 'seg_logits' in running.output_names
        if ('seg_logits' in model.output_names) != before:
            return (f'{path} {"lacks" if before else "adds"} the segmentation output of the '
                    'running model: reload it with a lifecycle cleanup and configure')
        self.staged = model
        return ''

    def apply(self) -> Optional[VDModel]:
        """Install the staged model, if any; return it."""
        model, self.staged = self.staged, None
        if model is not None:
            self._swap(model)
        return model
