"""The model contract of an export: what the file's metadata says, and where it came from.

``model_contract`` describes a model exported at a size (``vd_ros.core.contract``: encoder,
patch size, input size, normalisation, PDE, feature width, classes, outputs, contract
version); ``training_provenance`` is its ``training`` object (data, steps, UTC date, git
revision). ``training/train_heads.py`` uses the contract to prepare frames as the node does.
"""

import datetime
import hashlib
import os
import subprocess
from typing import Any, Dict, List, Optional, Sequence, Tuple

from training.models import VanishingDepth
from vd_ros.core.contract import ModelContract, REQUIRED_OUTPUTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def output_names(with_seg: bool, with_completion: bool = False,
                 with_uncertainty: bool = False, with_descriptors: bool = False) -> List[str]:
    """Names of the graph outputs, in the order ``ExportGraph`` returns them."""
    return list(REQUIRED_OUTPUTS) + (['seg_logits'] if with_seg else []) + (
        ['completed_depth'] if with_completion else []) + (
        ['depth_uncertainty'] if with_completion and with_uncertainty else []) + (
        ['descriptors'] if with_descriptors else [])


def check_input_size(input_size: Sequence[int], patch_size: int) -> Tuple[int, int]:
    """Return (H, W) after checking they are positive multiples of the patch size.

    Raises:
        ValueError: Naming the size and the patch size.
    """
    size = tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size) <= 0 or size[0] % patch_size or size[1] % patch_size:
        raise ValueError(f'input size {list(input_size)} must be two positive multiples of the '
                         f'patch size {patch_size}')
    if min(size) < 16:
        raise ValueError(f'input size {list(size)} is below the decoder minimum of 16 pixels')
    return size


def file_sha256(path: str) -> str:
    """Return the SHA-256 hex digest of a file (a model's parent, in its provenance)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def git_revision(root: str = ROOT) -> str:
    """Return ``git describe``-like ``<sha>[-dirty]`` of ``root``, or 'unknown'."""
    try:
        sha = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            ['git', '-C', root, 'status', '--porcelain', '--untracked-files=no'],
            capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return sha + ('-dirty' if dirty.strip() else '')


def training_provenance(data: Any, steps: int, **extra: Any) -> Dict[str, Any]:
    """Return the contract's ``training`` object: data, steps, UTC date, git revision, extras."""
    return {'data': data, 'steps': int(steps),
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'git_revision': git_revision(), **extra}


def model_contract(model: VanishingDepth, input_size: Sequence[int],
                   class_names: Sequence[str] = (), trained: bool = False,
                   training_info: Optional[Dict[str, Any]] = None,
                   completion: bool = False,
                   class_colors: Sequence[Sequence[int]] = (),
                   uncertainty: bool = False, descriptors: bool = False) -> ModelContract:
    """Return the contract of ``model`` exported at ``input_size`` (also used to preprocess).

    Args:
        model: The model.
        input_size: (H, W).
        class_names: Segmentation classes (empty without a head).
        trained: Whether encoder adapter and decoder come from a training run.
        training_info: Provenance (see :func:`training_provenance`).
        completion: A completion head is exported (``completed_depth``, contract v2).
        class_colors: ``(r, g, b)`` per class from the user's class list, or empty.
        uncertainty: The completion head predicts its uncertainty (``depth_uncertainty``,
            contract v3).
        descriptors: A descriptor head is exported (``descriptors``, contract v4).
    """
    version = 4 if descriptors else (3 if uncertainty else 2) if completion else 1
    return ModelContract(
        encoder=model.encoder_name, patch_size=int(model.patch_size),
        input_size=check_input_size(input_size, model.patch_size),
        mean=tuple(float(v) for v in model.mean), std=tuple(float(v) for v in model.std),
        pde=model.pde_config, feature_dim=int(model.feature_dim),
        class_names=tuple(str(name) for name in class_names),
        class_colors=tuple(tuple(int(v) for v in colour) for colour in class_colors),
        trained=bool(trained),
        outputs=tuple(output_names(bool(class_names), completion, uncertainty, descriptors)),
        training=dict(training_info or {}), contract_version=version)
