"""Swap the running model for another file without restarting the node.

``ros2 param set /vd_perception model_path NEW.onnx`` (an adapted model from ``vd_ros_adapt``,
say) loads the new file while the old one keeps serving frames; only a file that loads, passes
the contract and needs what configure built for the running one (the same optional outputs
behind publishers, the same segmentation classes and colours) is accepted, and the swap
happens between two frames. A refusal names the reason and the node keeps its model; another
model needs a lifecycle cleanup and configure.
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
        reason = _configured_difference(running, model)
        if reason:
            return (f'{path} {reason} than the running model: publishers and labels are made '
                    'at configure, so reload it with a lifecycle cleanup and configure')
        self.staged = model
        return ''

    def apply(self) -> Optional[VDModel]:
        """Install the staged model, if any; return it."""
        model, self.staged = self.staged, None
        if model is not None:
            self._swap(model)
        return model


# Optional outputs that configure creates publishers for.
PUBLISHED_OUTPUTS = ('seg_logits', 'depth_uncertainty', 'descriptors')


def _configured_difference(running: VDModel, model: VDModel) -> str:
    """Return what of ``model`` differs from what configure built for ``running`` ('' = none)."""
    for name in PUBLISHED_OUTPUTS:
        before = name in running.output_names
        if (name in model.output_names) != before:
            return f'{"lacks" if before else "adds"} the {name} output'
    if (model.contract.class_names, model.contract.class_colors) != (
            running.contract.class_names, running.contract.class_colors):
        return 'has other segmentation classes or colours'
    return ''
