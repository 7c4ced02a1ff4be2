"""The node's parameters: declared with ranges, a few changeable at run time, checked together.

Most parameters shape what the node builds (the model session, the subscriptions, the
publishers) and are read-only: ``ros2 param set`` on them is refused by rclpy with "parameter
is read-only". The :data:`LIVE` ones only change how a frame is processed; a change is
validated as a whole (ranges by the descriptors, then :func:`combination_error`) and applied
at once, so the worker never sees half of an update such as a new ``depth.min_m`` without the
``depth.max_m`` that makes it valid. A new ``model_path`` loads the file during the check and
swaps the model in when the change applies (``vd_ros.model_reload``).
"""

from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult)

from vd_ros.core.depth_alignment import ALIGNMENTS

# name: (default, description, range (min, max) or None)
PARAMETERS = {
    'model_path': ('', 'ONNX model exported by training/export_onnx.py (required); a new '
                   'path while running swaps the model between two frames', None),
    'managed': (False, 'true: a lifecycle node that waits for configure and activate; false: '
                'configures and activates itself at start', None),
    'providers': (['cuda', 'cpu'], 'ONNX Runtime execution providers in order of preference: '
                  'tensorrt, cuda, cpu (or full ORT names)', None),
    'tensorrt_cache_path': ('', "TensorRT engine cache folder ('' = no cache)", None),
    'intra_op_threads': (0, 'ONNX Runtime intra-op CPU threads (0 = all CPUs but one, at least 1)',
                         (0, 256)),
    'split_model': (True, 'run the completion head in the second worker thread, beside the '
                    'post-processing (CPU provider; false: the whole model in the first)', None),
    'split_descriptor_head': (True, 'with split_model, run the descriptor head in the second '
                              'worker thread too, after the depth is published (false: in the '
                              'first, beside the encoder)', None),
    'qos': ('sensor_data', "input QoS: 'sensor_data' (best effort) or 'reliable'", None),
    'sync.slop': (0.02, 'largest RGB-depth stamp difference in a pair, seconds', (0.0, 1.0)),
    'sync.queue_size': (5, 'messages kept per input while waiting for a partner', (1, 100)),
    'sync.use_message_filters': ('auto', "'auto', 'true' or 'false' (false = vd_ros.sync)",
                                 None),
    'outputs.segmentation': (True, 'publish ~/segmentation and ~/segmentation/color', None),
    'outputs.depth': (True, 'publish ~/depth and ~/depth/camera_info', None),
    'outputs.features': (True, 'publish ~/features, ~/features/camera_info and '
                         '~/features/pca', None),
    'outputs.points': (False, 'publish ~/points (PointCloud2 xyzrgb)', None),
    'segmentation.alpha': (0.5, 'weight of the label colour over the RGB image', (0.0, 1.0)),
    'depth.min_m': (0.1, 'nearer measured depth is invalid; nearer output depth is NaN',
                    (0.0, 100.0)),
    'depth.max_m': (10.0, 'farther measured depth is invalid; farther output depth is NaN',
                    (0.01, 1000.0)),
    'depth.fit_shift': (False, 'align the predicted depth with scale and shift (else scale)',
                        None),
    'depth.alignment': ('local', "'local' (global fit, then the measured / predicted ratio "
                        "interpolated between the measured pixels) or 'global' (one fit)", None),
    'depth.min_confidence': (0.0, 'completed pixels whose ~/depth/confidence is below this are '
                             'NaN in ~/depth and ~/points (0 = off; needs a model with '
                             'depth_uncertainty)', (0.0, 1.0)),
    'points.stride': (4, 'use every stride-th pixel for ~/points', (1, 64)),
    'diagnostics_period_s': (1.0, 'period of /diagnostics, seconds', (0.05, 3600.0)),
    'max_input_pixels': (3840 * 2160, 'images with more pixels are dropped as oversized: the '
                         "node's work grows with the pixels (an 8K frame took seconds)",
                         (1, 2 ** 31 - 1)),
    'log_throttle_s': (5.0, 'at most one log line per drop cause per period, seconds',
                       (0.0, 3600.0)),
}
# Changeable with `ros2 param set` while the node runs; every other parameter is read-only.
LIVE = frozenset({'segmentation.alpha', 'depth.fit_shift', 'depth.alignment', 'depth.min_m',
                  'depth.max_m', 'depth.min_confidence', 'points.stride', 'log_throttle_s',
                  'model_path'})
# -p sync.use_message_filters:=false (or YAML false) arrives as a bool, not a string.
DYNAMIC_TYPING = frozenset({'sync.use_message_filters'})


def descriptor(name: str) -> ParameterDescriptor:
    """Return the descriptor of parameter ``name``: description, range, read-only flag."""
    _, description, value_range = PARAMETERS[name]
    result = ParameterDescriptor(description=description, read_only=name not in LIVE,
                                 dynamic_typing=name in DYNAMIC_TYPING)
    if isinstance(value_range, tuple) and isinstance(value_range[0], float):
        result.floating_point_range = [FloatingPointRange(
            from_value=value_range[0], to_value=value_range[1])]
    elif isinstance(value_range, tuple):
        result.integer_range = [IntegerRange(
            from_value=value_range[0], to_value=value_range[1], step=1)]
    return result


def combination_error(values: dict) -> str:
    """Return why a full set of parameter values is invalid as a whole, or '' when it is valid.

    Ranges and types are the descriptors' business; this checks what no single range can.
    """
    if values['depth.alignment'] not in ALIGNMENTS:
        return (f'depth.alignment must be one of {ALIGNMENTS}, got '
                f'{values["depth.alignment"]!r}')
    if values['depth.min_m'] >= values['depth.max_m']:
        return (f'depth.min_m {values["depth.min_m"]} must be below depth.max_m '
                f'{values["depth.max_m"]}')
    return ''


class LiveParameters:
    """Declares the node's parameters and keeps their current values, updated atomically.

    Attributes:
        values: Name -> value of every parameter. Replaced as a whole by a successful
            ``set_parameters`` call (never mutated), so a reader that takes ``values`` once
            per frame sees one consistent set.
    """

    def __init__(self, node, model_reload=None):
        """Declare every parameter on ``node`` (overrides applied) and watch for changes.

        Args:
            node: The node.
            model_reload: Checks and applies a new ``model_path`` (``vd_ros.model_reload``);
                without it the parameter only takes effect at the next configure.
        """
        for name, (default, _, _) in PARAMETERS.items():
            node.declare_parameter(name, default, descriptor(name))
        self.values = {name: node.get_parameter(name).value for name in PARAMETERS}
        self._logger = node.get_logger()
        self._model_reload = model_reload
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    def _validate(self, parameters) -> SetParametersResult:
        """Refuse a change that leaves the set invalid (rclpy already checked each range)."""
        updated = {**self.values, **{p.name: p.value for p in parameters}}
        reason = combination_error(updated)
        if not reason and self._model_reload is not None and any(
                p.name == 'model_path' for p in parameters):
            reason = self._model_reload.check(updated['model_path'])
        return SetParametersResult(successful=not reason, reason=reason)

    def _apply(self, parameters) -> None:
        """Publish the accepted values to the worker in one step (a new model first)."""
        if self._model_reload is not None:
            self._model_reload.apply()
        self.values = {**self.values, **{p.name: p.value for p in parameters}}
        self._logger.info('parameters changed: ' + ', '.join(
            f'{p.name}={p.value!r}' for p in parameters))
