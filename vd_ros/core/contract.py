"""The model contract between ``training/export_onnx.py`` and the node.

See ``shared/docs/model-contract.md``. The ONNX file stores a JSON object under the metadata key
``vd_ros``; :func:`parse_metadata` validates it and returns a :class:`ModelContract`.
"""

from dataclasses import dataclass, field
import json

from vd_ros.core.pde import PDEConfig

CONTRACT_VERSION = 4
# Version 2 adds the optional completed_depth output, version 3 the optional depth_uncertainty
# beside it, version 4 the optional dense matching descriptors (see docs/model_contract.md);
# files of versions 1 to 3 read unchanged.
READABLE_VERSIONS = (1, 2, 3, 4)
METADATA_KEY = 'vd_ros'
INPUT_NAMES = ('rgb', 'pde')
REQUIRED_OUTPUTS = ('features', 'depth')
OPTIONAL_OUTPUTS = ('seg_logits', 'completed_depth', 'depth_uncertainty', 'descriptors')
# The first contract version of each optional output that needs one.
OUTPUT_SINCE = {'completed_depth': 2, 'depth_uncertainty': 3, 'descriptors': 4}


class ContractError(ValueError):
    """A model file does not follow the contract the node understands."""


@dataclass(frozen=True)
class ModelContract:
    """Everything the node needs to feed a model and read its outputs.

    Attributes:
        encoder: timm name of the RGB encoder.
        patch_size: ViT patch size p.
        input_size: (H, W) of the model input, multiples of ``patch_size``.
        mean: RGB mean applied inside the graph (informational for the node).
        std: RGB std applied inside the graph.
        pde: Parameters of the positional depth encoding.
        feature_dim: D, channels of the ``features`` output.
        class_names: Segmentation classes, index = label id; empty without a head.
        class_colors: Optional display colour ``(r, g, b)`` (0..255) of every class, from the
            user's class list; empty when none were given (the node uses its palette). Files
            without the key read as empty; nodes that predate it ignore it.
        trained: False for a random-init export.
        outputs: Names of the outputs present in the graph.
        training: Free-form provenance (data, steps, date, git revision).
        contract_version: Version of the contract the file follows (1 to 4).
    """

    encoder: str
    patch_size: int
    input_size: tuple
    mean: tuple
    std: tuple
    pde: PDEConfig
    feature_dim: int
    class_names: tuple = ()
    class_colors: tuple = ()
    trained: bool = False
    outputs: tuple = REQUIRED_OUTPUTS
    training: dict = field(default_factory=dict)
    contract_version: int = CONTRACT_VERSION

    def to_json(self) -> str:
        """Serialise to the JSON stored in the ONNX metadata (``class_colors`` if given)."""
        meta = {
            'contract_version': self.contract_version,
            'encoder': self.encoder,
            'patch_size': self.patch_size,
            'input_size': list(self.input_size),
            'mean': list(self.mean),
            'std': list(self.std),
            'pde': self.pde.to_dict(),
            'feature_dim': self.feature_dim,
            'class_names': list(self.class_names),
            'trained': self.trained,
            'training': self.training,
            'outputs': list(self.outputs),
        }
        if self.class_colors:
            meta['class_colors'] = [list(colour) for colour in self.class_colors]
        return json.dumps(meta, sort_keys=True)


def _readable_versions_text() -> str:
    """Return the readable versions in words: '1, 2, 3 or 4'."""
    names = [str(v) for v in READABLE_VERSIONS]
    return ', '.join(names[:-1]) + ' or ' + names[-1] if len(names) > 1 else names[0]


def parse_metadata(text: str, source: str = '<model>') -> ModelContract:
    """Parse and validate the ``vd_ros`` metadata JSON of a model file.

    Args:
        text: The JSON string stored under :data:`METADATA_KEY`.
        source: File name used in error messages.

    Returns:
        The validated contract.

    Raises:
        ContractError: With the file name and the offending field.
    """
    try:
        meta = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise ContractError(f'{source}: metadata "{METADATA_KEY}" is not valid JSON: {error}')
    if not isinstance(meta, dict):
        raise ContractError(f'{source}: metadata "{METADATA_KEY}" must be a JSON object')
    version = meta.get('contract_version')
    if version not in READABLE_VERSIONS:
        raise ContractError(
            f'{source}: model contract version {version!r} found, version '
            f'{_readable_versions_text()} expected; re-export the model with this release of '
            'training/export_onnx.py')
    missing = [key for key in ('encoder', 'patch_size', 'input_size', 'mean', 'std', 'pde',
                               'feature_dim', 'outputs') if key not in meta]
    if missing:
        raise ContractError(f'{source}: metadata lacks {missing}')
    try:
        contract = ModelContract(
            encoder=str(meta['encoder']),
            patch_size=int(meta['patch_size']),
            input_size=tuple(int(v) for v in meta['input_size']),
            mean=tuple(float(v) for v in meta['mean']),
            std=tuple(float(v) for v in meta['std']),
            pde=PDEConfig.from_dict(meta['pde']),
            feature_dim=int(meta['feature_dim']),
            class_names=tuple(str(v) for v in meta.get('class_names', ())),
            class_colors=tuple(tuple(int(v) for v in colour)
                               for colour in meta.get('class_colors', ())),
            trained=bool(meta.get('trained', False)),
            outputs=tuple(str(v) for v in meta['outputs']),
            training=dict(meta.get('training', {})),
            contract_version=version,
        )
    except (TypeError, ValueError) as error:
        raise ContractError(f'{source}: invalid metadata: {error}')
    height, width = contract.input_size if len(contract.input_size) == 2 else (0, 0)
    if height <= 0 or width <= 0 or height % contract.patch_size or width % contract.patch_size:
        raise ContractError(
            f'{source}: input_size {list(contract.input_size)} must be two positive multiples '
            f'of patch_size {contract.patch_size}')
    absent = [name for name in REQUIRED_OUTPUTS if name not in contract.outputs]
    if absent:
        raise ContractError(f'{source}: required outputs {absent} missing from {contract.outputs}')
    for name, since in OUTPUT_SINCE.items():
        if name in contract.outputs and version < since:
            raise ContractError(f'{source}: {name} needs model contract version {since}, the '
                                f'metadata says {version}')
    if 'depth_uncertainty' in contract.outputs and 'completed_depth' not in contract.outputs:
        raise ContractError(f'{source}: depth_uncertainty is the uncertainty of '
                            f'completed_depth, which is missing from {contract.outputs}')
    if 'seg_logits' in contract.outputs and not contract.class_names:
        raise ContractError(f'{source}: seg_logits present but class_names is empty')
    if contract.class_colors and (
            len(contract.class_colors) != len(contract.class_names) or
            any(len(c) != 3 or not all(0 <= v <= 255 for v in c)
                for c in contract.class_colors)):
        raise ContractError(
            f'{source}: class_colors {meta["class_colors"]!r} must hold one [r, g, b] of '
            f'integers 0..255 per class ({len(contract.class_names)} class_names)')
    return contract
