"""Run an exported model file (ONNX Runtime, CPU) on evaluation frames.

A frame with its measured depth is prepared as the node does
(``vd_ros.core.preprocess.prepare_inputs``); a sparse input (the completion and confidence
protocols) is always splatted into the model grid (``splat=True``), as ``training.evaluate``
feeds its torch model, so that a file's figures are those of ``completion.md`` and
``confidence.md``. The completed depth is ``completed_depth`` (or ``depth`` without a
completion head) mapped back to the camera and locally aligned to the input
(``vd_ros.core.depth_alignment.align_depth``, the node's default ``depth.alignment: local``);
labels come from ``labels_from_logits``. Lets two files (e.g. a float and an int8 model) be
scored on identical inputs with the protocols of ``training.eval``.
"""

import numpy as np

from training.eval.completion_protocol import CompletionMethod
from training.eval.frames import RGBDFrame
from vd_ros.core.depth_alignment import align_depth
from vd_ros.core.postprocess import labels_from_logits
from vd_ros.core.preprocess import Letterbox, prepare_inputs
from vd_ros.inference import VDModel


class OnnxRunner:
    """One model file in an ONNX Runtime CPU session."""

    def __init__(self, path: str, threads: int = 0):
        """Open ``path`` (validated against the model contract by ``VDModel``)."""
        self.model = VDModel(path, providers=['cpu'], intra_op_threads=threads)
        self.contract = self.model.contract

    def run(self, rgb: np.ndarray, depth_m: np.ndarray,
            sparse: bool = False) -> tuple[dict, Letterbox]:
        """Return every output (batch dimension dropped) and the frame's letterbox.

        ``sparse``: splat ``depth_m`` into the model grid (module docstring) instead of the
        node's nearest-neighbour resize.
        """
        rgb_in, pde, letterbox = prepare_inputs(rgb, depth_m, self.contract,
                                                splat=True if sparse else None)
        outputs = self.model.run(rgb_in, pde)
        return {name: value[0] for name, value in outputs.items()}, letterbox

    def maps(self) -> 'OnnxMapRunner':
        """Return this runner for sparse inputs, one-channel outputs as (h, w) like VDRunner."""
        return OnnxMapRunner(self)

    def completion_method(self) -> CompletionMethod:
        """Return the locally aligned completed depth of a sparse input (module docstring)."""
        name = 'completed_depth' if 'completed_depth' in self.model.output_names else 'depth'

        def complete(frame: RGBDFrame, sparse_m: np.ndarray) -> np.ndarray:
            outputs, letterbox = self.run(frame.rgb, sparse_m, sparse=True)
            restored = letterbox.restore(outputs[name][0], 'linear')  # (h, w) metres
            aligned, _, _ = align_depth(restored, sparse_m, False, 'local')
            return np.nan_to_num(aligned, nan=0.0)
        return complete

    def labels(self, rgb: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        """Return the (h, w) int64 class labels at camera resolution.

        Raises:
            ValueError: The model has no ``seg_logits`` output.
        """
        if 'seg_logits' not in self.model.output_names:
            raise ValueError(f'{self.model.path}: no seg_logits output to label frames with')
        outputs, letterbox = self.run(rgb, depth_m)
        return labels_from_logits(outputs['seg_logits'], letterbox, np.int64)


class OnnxMapRunner:
    """An ``OnnxRunner`` for sparse inputs whose ``run`` drops the channel of 1-channel maps.

    ``training.eval.confidence_protocol`` takes a runner of this layout (as ``VDRunner``
    returns it): the depth splatted as ``VDRunner`` does, ``completed_depth`` and
    ``depth_uncertainty`` as (h, w).
    """

    def __init__(self, runner: OnnxRunner):
        """Wrap ``runner``."""
        self.runner = runner

    def run(self, rgb: np.ndarray, depth_m: np.ndarray) -> tuple[dict, Letterbox]:
        """Return every output (batch and a single channel dropped) and the letterbox."""
        outputs, letterbox = self.runner.run(rgb, depth_m, sparse=True)
        return {name: value[0] if value.ndim == 3 and value.shape[0] == 1 else value
                for name, value in outputs.items()}, letterbox
