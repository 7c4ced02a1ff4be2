"""ONNX Runtime session for a model that follows the vd_ros contract.

:class:`VDModel` opens an exported ONNX file, validates its ``vd_ros`` metadata with
:func:`vd_ros.core.contract.parse_metadata` and its input/output names and shapes against that
contract (``shared/docs/model-contract.md``), picks execution providers and reports which one
is really active. :meth:`VDModel.run` computes only the outputs asked for.
"""

import logging
import os

import numpy as np
import onnxruntime as ort

from vd_ros.core.contract import (
    ContractError, INPUT_NAMES, METADATA_KEY, ModelContract, parse_metadata)

_logger = logging.getLogger(__name__)

TENSORRT = 'TensorrtExecutionProvider'
CUDA = 'CUDAExecutionProvider'
CPU = 'CPUExecutionProvider'
DEFAULT_PROVIDERS = (CUDA, CPU)
PROVIDER_ALIASES = {'tensorrt': TENSORRT, 'trt': TENSORRT, 'cuda': CUDA, 'cpu': CPU}


def auto_intra_op_threads() -> int:
    """Return the intra-op thread count for ``intra_op_threads: 0``.

    Every CPU this process may run on but one, at least one: the spare core runs the executor
    and the post-processing of the previous frame while the model runs. On a 2-core machine
    that is 1, which the CPU preset also runs fastest with under load (README "Performance").
    """
    return max(1, len(os.sched_getaffinity(0)) - 1)


class ModelLoadError(RuntimeError):
    """A model file is missing or ONNX Runtime cannot load it."""


def resolve_providers(names) -> list:
    """Map provider names or aliases (``tensorrt``, ``cuda``, ``cpu``) to ORT names.

    Args:
        names: Iterable of ORT provider names or aliases, in order of preference.

    Returns:
        ORT provider names, duplicates removed, ``CPUExecutionProvider`` appended last when
        missing so a session can always be created.

    Raises:
        ValueError: For a name ONNX Runtime does not know.
    """
    known = set(ort.get_all_providers())
    resolved = []
    for name in names:
        full = PROVIDER_ALIASES.get(str(name).strip().lower(), str(name).strip())
        if full not in known:
            raise ValueError(f'unknown execution provider {name!r}; known: {sorted(known)}')
        if full not in resolved:
            resolved.append(full)
    if CPU not in resolved:
        resolved.append(CPU)
    return resolved


def provider_options(name: str, tensorrt_cache_path: str = '', tensorrt_fp16: bool = True):
    """Return the ORT options of one execution provider.

    Args:
        name: ORT provider name.
        tensorrt_cache_path: Folder for TensorRT engines ('' disables the engine cache).
        tensorrt_fp16: Let TensorRT build fp16 engines.

    Returns:
        The options dict for ``InferenceSession(providers=[(name, options), ...])``.
    """
    if name == TENSORRT:
        options = {'trt_fp16_enable': tensorrt_fp16}
        if tensorrt_cache_path:
            options.update(trt_engine_cache_enable=True,
                           trt_engine_cache_path=tensorrt_cache_path,
                           trt_timing_cache_enable=True,
                           trt_timing_cache_path=tensorrt_cache_path)
        return options
    return {}


class VDModel:
    """An exported Vanishing Depth model run with ONNX Runtime.

    Attributes:
        path: The model file.
        contract: Its validated :class:`ModelContract`.
        requested_providers: Providers asked for, in order of preference.
        active_providers: Providers ONNX Runtime really uses (``session.get_providers()``).
        output_names: Outputs present in the graph.
        intra_op_threads: ORT intra-op threads in use.
    """

    def __init__(self, path: str, providers=DEFAULT_PROVIDERS, tensorrt_cache_path: str = '',
                 tensorrt_fp16: bool = True, intra_op_threads: int = 0):
        """Open and validate a model file.

        Args:
            path: ONNX file written by ``training/export_onnx.py``.
            providers: Execution providers (names or aliases) in order of preference.
            tensorrt_cache_path: TensorRT engine cache folder ('' = no cache).
            tensorrt_fp16: Allow fp16 TensorRT engines.
            intra_op_threads: ORT intra-op threads; 0 = :func:`auto_intra_op_threads`.

        Raises:
            ModelLoadError: The file is missing or not a loadable ONNX model.
            ContractError: Metadata, inputs or outputs do not follow the contract.
            ValueError: An unknown provider name.
        """
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise ModelLoadError(f'{self.path}: model file not found')
        self.requested_providers = resolve_providers(providers)
        if tensorrt_cache_path and TENSORRT in self.requested_providers:
            os.makedirs(tensorrt_cache_path, exist_ok=True)
        options = ort.SessionOptions()
        self.intra_op_threads = int(intra_op_threads) or auto_intra_op_threads()
        options.intra_op_num_threads = self.intra_op_threads
        # Measured on the CPU preset (bench/ort_settings.py, README "Performance"): level all
        # needs the least CPU per call; idle pool threads that spin take the cores the
        # executor and the post-processing need.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            self.session = ort.InferenceSession(
                self.path, sess_options=options,
                providers=[(name, provider_options(name, tensorrt_cache_path, tensorrt_fp16))
                           for name in self.requested_providers])
        except Exception as error:  # ORT raises pybind classes that share no base but Exception
            raise ModelLoadError(
                f'{self.path}: ONNX Runtime cannot load the model: {error}') from error
        self.active_providers = list(self.session.get_providers())
        self.contract = self._read_contract()
        self.output_names = tuple(out.name for out in self.session.get_outputs())
        self._check_graph()
        self._log_providers()

    @property
    def active_provider(self) -> str:
        """The provider ONNX Runtime tries first for every node of the graph."""
        return self.active_providers[0]

    def _read_contract(self) -> ModelContract:
        metadata = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in metadata:
            raise ContractError(
                f'{self.path}: no "{METADATA_KEY}" metadata; export the model with '
                f'training/export_onnx.py (keys found: {sorted(metadata)})')
        return parse_metadata(metadata[METADATA_KEY], source=self.path)

    def expected_shapes(self) -> dict:
        """Return the shape of every contract input and output, keyed by name."""
        contract = self.contract
        height, width = contract.input_size
        patch = contract.patch_size
        shapes = {
            'rgb': [1, 3, height, width],
            'pde': [1, contract.pde.channels, height, width],
            'features': [1, contract.feature_dim, height // patch, width // patch],
            'depth': [1, 1, height, width],
            'completed_depth': [1, 1, height, width],
            'depth_uncertainty': [1, 1, height, width],
            'descriptors': [1, None, None, None],
        }
        if contract.class_names:
            shapes['seg_logits'] = [1, len(contract.class_names), None, None]
        return shapes

    def _check_graph(self):
        expected = self.expected_shapes()
        inputs = {arg.name: arg for arg in self.session.get_inputs()}
        if sorted(inputs) != sorted(INPUT_NAMES):
            raise ContractError(
                f'{self.path}: graph inputs {sorted(inputs)}, contract expects '
                f'{sorted(INPUT_NAMES)}')
        outputs = {arg.name: arg for arg in self.session.get_outputs()}
        absent = [name for name in self.contract.outputs if name not in outputs]
        if absent:
            raise ContractError(
                f'{self.path}: metadata lists outputs {absent} that the graph lacks '
                f'(graph outputs {sorted(outputs)})')
        for name, arg in [*inputs.items(), *outputs.items()]:
            if name not in expected:
                continue
            if arg.type != 'tensor(float)':
                raise ContractError(f'{self.path}: {name} is {arg.type}, expected tensor(float)')
            if not _shape_matches(arg.shape, expected[name]):
                raise ContractError(
                    f'{self.path}: {name} has shape {list(arg.shape)}, the contract '
                    f'(metadata input_size {list(self.contract.input_size)}) expects '
                    f'{expected[name]}')

    def _log_providers(self):
        _logger.info('%s: active execution providers %s (requested %s)', self.path,
                     self.active_providers, self.requested_providers)
        if self.active_provider != self.requested_providers[0]:
            _logger.warning(
                '%s: requested %s but ONNX Runtime runs on %s (fallback; check the GPU, '
                'CUDA/TensorRT libraries and the onnxruntime-gpu install)', self.path,
                self.requested_providers[0], self.active_provider)

    def run(self, rgb_in: np.ndarray, pde: np.ndarray, outputs=None) -> dict:
        """Run the model and return only the requested outputs.

        Args:
            rgb_in: float32 (1, 3, H, W) RGB in [0, 1].
            pde: float32 (1, C, H, W) positional depth encoding.
            outputs: Names of the outputs to compute (None = all present).

        Returns:
            Dict from output name to float32 array.

        Raises:
            ValueError: Wrong input shape or dtype, or an output the model does not have.
        """
        names = list(self.output_names if outputs is None else outputs)
        unknown = [name for name in names if name not in self.output_names]
        if unknown:
            raise ValueError(f'outputs {unknown} not in model outputs {list(self.output_names)}')
        expected = self.expected_shapes()
        feeds = {'rgb': rgb_in, 'pde': pde}
        for name, array in feeds.items():
            if list(array.shape) != expected[name] or array.dtype != np.float32:
                raise ValueError(
                    f'input {name} is {array.dtype}{list(array.shape)}, model expects '
                    f'float32{expected[name]}')
        if not names:
            return {}
        return dict(zip(names, self.session.run(names, feeds)))


def _shape_matches(actual, expected) -> bool:
    """Compare an ORT shape with a contract shape; None and symbolic dims match anything."""
    if len(actual) != len(expected):
        return False
    return all(not isinstance(a, int) or e is None or a == e for a, e in zip(actual, expected))
