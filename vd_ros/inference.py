"""ONNX Runtime session for a model that follows the vd_ros contract.

:class:`VDModel` opens an exported ONNX file, validates its ``vd_ros`` metadata with
:func:`vd_ros.core.contract.parse_metadata` and its input/output names and shapes against that
contract (``shared/docs/model-contract.md``), picks execution providers and reports which one
is really active. :meth:`VDModel.run` computes only the outputs asked for: on the CPU provider
through a session over the sub-graph that feeds them (``vd_ros.graph_prune``), built in the
background the first time a set of outputs is asked for (the full graph answers until then).
:meth:`VDModel.run_staged` runs such a sub-graph in parts (``vd_ros.graph_split``): the heads'
outputs come from :meth:`StagedOutputs.batches`, which another thread may run while this one
runs the next frame's first part.
"""

from concurrent.futures import ThreadPoolExecutor, wait
import logging
import os
import threading
import time

import numpy as np
import onnx
import onnxruntime as ort

from vd_ros.core.contract import (
    ContractError, INPUT_NAMES, METADATA_KEY, ModelContract, parse_metadata)
from vd_ros.graph_prune import prune_outputs
from vd_ros.graph_split import COMPLETION_HEAD, HEADS, split_heads
from vd_ros.model_parts import LatePart, StagedOutputs, SubGraph

_logger = logging.getLogger(__name__)

TENSORRT = 'TensorrtExecutionProvider'
CUDA = 'CUDAExecutionProvider'
CPU = 'CPUExecutionProvider'
DEFAULT_PROVIDERS = (CUDA, CPU)
PROVIDER_ALIASES = {'tensorrt': TENSORRT, 'trt': TENSORRT, 'cuda': CUDA, 'cpu': CPU}
MAX_SUB_SESSIONS = 8  # output sets with a session of their own; further sets run the full graph


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
        prunes: Whether :meth:`run` uses sub-graph sessions (CPU provider only: a TensorRT or
            CUDA session per output set would build its engines again).
        splits: Whether :meth:`run_staged` runs the heads as late parts (CPU provider only, as
            ``prunes``).
        heads: The heads it cuts off (``vd_ros.graph_split.HEADS``, or the completion head
            alone).
    """

    def __init__(self, path: str, providers=DEFAULT_PROVIDERS, tensorrt_cache_path: str = '',
                 tensorrt_fp16: bool = True, intra_op_threads: int = 0, prune: bool = True,
                 split: bool = True, split_descriptors: bool = True):
        """Open and validate a model file.

        Args:
            path: ONNX file written by ``training/export_onnx.py``.
            providers: Execution providers (names or aliases) in order of preference.
            tensorrt_cache_path: TensorRT engine cache folder ('' = no cache).
            tensorrt_fp16: Allow fp16 TensorRT engines.
            intra_op_threads: ORT intra-op threads; 0 = :func:`auto_intra_op_threads`.
            prune: Run a call that asks for some outputs on the sub-graph that feeds them.
            split: Let :meth:`run_staged` run the heads apart (needs ``prune``).
            split_descriptors: The descriptor head too (false: it runs in the early part).

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
        self._options = options
        self._providers = [(name, provider_options(name, tensorrt_cache_path, tensorrt_fp16))
                           for name in self.requested_providers]
        with open(self.path, 'rb') as stream:
            self._file = stream.read()  # the bytes the sub-graphs come from, whatever the disk
        try:
            self.session = ort.InferenceSession(self._file, sess_options=options,
                                                providers=self._providers)
        except Exception as error:  # ORT raises pybind classes that share no base but Exception
            raise ModelLoadError(
                f'{self.path}: ONNX Runtime cannot load the model: {error}') from error
        self.active_providers = list(self.session.get_providers())
        self.contract = self._read_contract()
        self.output_names = tuple(out.name for out in self.session.get_outputs())
        self._check_graph()
        self._log_providers()
        self.prunes = prune and self.active_provider == CPU
        self.heads = HEADS if split_descriptors else (COMPLETION_HEAD,)
        self._late_outputs = {name for head in self.heads for name in head}
        self.splits = split and self.prunes and not self._late_outputs.isdisjoint(
            self.output_names)
        self._sub_sessions = {}  # (frozenset of output names, split) -> Future of SubGraph
        self._lock = threading.Lock()
        self._builder = None

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
        return self._run(rgb_in, pde, outputs, split=False).complete()

    def run_staged(self, rgb_in: np.ndarray, pde: np.ndarray, outputs=None) -> StagedOutputs:
        """Run the first part of the model; :meth:`StagedOutputs.batches` runs the rest.

        With ``splits`` and a head's output asked for (completion or descriptors), the first
        part computes every other output asked for and what the heads read, and ``batches``
        runs the heads (in any thread). Otherwise (or until the parts' sessions are built) the
        first part computes everything. Arguments and errors as :meth:`run`.
        """
        return self._run(rgb_in, pde, outputs, split=True)

    def prepare(self, outputs) -> None:
        """Start building the session(s) :meth:`run_staged` will use for ``outputs``."""
        if outputs:
            self.sub_graph_for(outputs, self._splits_for(outputs))

    def _splits_for(self, names) -> bool:
        """Whether a staged call for ``names`` runs in parts (a head's output among them)."""
        return self.splits and not self._late_outputs.isdisjoint(names)

    def _run(self, rgb_in, pde, outputs, split: bool) -> StagedOutputs:
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
            return StagedOutputs({}, 0.0)
        return self.sub_graph_for(names, split and self._splits_for(names)).start(feeds, names)

    def sub_graph_for(self, names, split: bool = False) -> SubGraph:
        """Return the session(s) to compute ``names`` with: their sub-graph's once it is built.

        The first call for a set of outputs (and ``split``) starts building that sub-graph's
        session (its parts' with ``split``) in a background thread and returns the full
        session; so does every call until it is ready, every call after a build failed (logged
        once), and every call for a set beyond the first ``MAX_SUB_SESSIONS``.
        """
        wanted = frozenset(names)
        full = SubGraph(self.session, sorted(wanted))
        if not self.prunes or (wanted == frozenset(self.output_names) and not split):
            return full
        key = (wanted, split)
        with self._lock:
            future = self._sub_sessions.get(key)
            if future is None and len(self._sub_sessions) >= MAX_SUB_SESSIONS:
                return full
            if future is None:
                if self._builder is None:
                    self._builder = ThreadPoolExecutor(1, thread_name_prefix='vd_subgraph')
                future = self._sub_sessions[key] = self._builder.submit(
                    self._build_sub_graph, sorted(wanted), split)
        if not future.done() or future.exception() is not None:
            return full
        return future.result()

    def _session(self, proto: onnx.ModelProto) -> ort.InferenceSession:
        return ort.InferenceSession(proto.SerializeToString(), sess_options=self._options,
                                    providers=self._providers)

    def _build_sub_graph(self, names, split: bool) -> SubGraph:
        started = time.perf_counter()
        try:
            model = onnx.load_from_string(self._file)
            graph, nodes = self._parts(model, names, split)
            # One call on zeros: the first call of a session allocates its memory, so the first
            # frame it answers would be slow.
            shapes = self.expected_shapes()
            graph.start({name: np.zeros(shapes[name], np.float32) for name in INPUT_NAMES},
                        names).complete()
        except Exception as error:  # as in __init__; the full session keeps answering
            _logger.warning('%s: no sub-graph session for outputs %s (%s); the full graph '
                            'computes them', self.path, names, error)
            raise
        _logger.info('%s: outputs %s now computed by their sub-graph%s (%s of %d nodes), built '
                     'in %.2f s', self.path, names,
                     f' in {len(graph.lates) + 1} parts' if graph.lates else '', nodes,
                     len(model.graph.node), time.perf_counter() - started)
        return graph

    def _parts(self, model: onnx.ModelProto, names, split: bool) -> tuple:
        """Return the SubGraph of ``names`` and its node count ('early + late ...' when split)."""
        if split:
            early, early_names, lates = split_heads(model, names, self.heads)
            if lates:
                parts = [LatePart(self._session(late), [value.name for value in late.graph.input],
                                  late_names) for late, late_names in lates]
                counts = [len(part.graph.node) for part in [early, *(late for late, _ in lates)]]
                return (SubGraph(self._session(early), early_names, parts),
                        ' + '.join(map(str, counts)))
            _logger.info('%s: outputs %s run in one part (no head has a cut)', self.path, names)
        pruned = prune_outputs(model, names)
        return SubGraph(self._session(pruned), names), str(len(pruned.graph.node))

    def wait_for_sub_sessions(self, timeout: float = None) -> None:
        """Block until every sub-graph session asked for so far is built (or failed)."""
        with self._lock:
            futures = list(self._sub_sessions.values())
        wait(futures, timeout)


def _shape_matches(actual, expected) -> bool:
    """Compare an ORT shape with a contract shape; None and symbolic dims match anything."""
    if len(actual) != len(expected):
        return False
    return all(not isinstance(a, int) or e is None or a == e for a, e in zip(actual, expected))
