"""Accuracy gates of a reduced-precision model file against its float parent.

Both files run on the same held-out frames with the same inputs (``training.eval.onnx_runner``:
sparse inputs splatted into the model grid as ``training.evaluate`` feeds its torch model, so
the parent's figures are those of ``completion.md`` and ``confidence.md`` for the same model;
dense inputs prepared as the node prepares them):

* completion: the completion protocol (``training.eval.completion_protocol``; same frames,
  points and Perlin holes, seeded alike) on the completed depth, locally aligned as the node
  publishes it; the RMSE of each pattern (per-frame RMSE averaged over all frames) may grow by
  at most ``max_rmse_increase`` (relative);
* segmentation: mIoU (``training.eval.segmentation_metrics``) on the held-out frames with
  labels in the model's class layout may drop by at most ``max_miou_drop`` points;
* features: cosine similarity of every patch's feature vector to the parent's (whole measured
  depth as input), averaged over patches and frames, at least ``min_cosine``; the same for
  every cell of the dense descriptors of a file with ``descriptors`` (contract v4);
* uncertainty (files with ``depth_uncertainty``): the confidence protocol of
  ``training.evaluate --task confidence`` (``training.eval.confidence_protocol``, the
  completion protocol's inputs) over all frames per pattern; the sparsification ratio (RMSE of
  the most confident half of the filled pixels / all filled, lower is better) may grow by at
  most ``max_half_ratio_increase`` (absolute) and the calibration ratio (mean |error| / mean u,
  1 when calibrated) may move by at most ``max_scale_change`` (relative, either way).
"""

import dataclasses
import logging

import numpy as np

from training.data.datasets import build_source
from training.data.label_layouts import IGNORE_LABEL, LABEL_LAYOUTS, training_labels
from training.eval.completion_protocol import (DEFAULT_PATTERNS, InputPattern,
                                               run_completion_protocol)
from training.eval.confidence_protocol import (ALL_SOURCES, run_confidence_protocol,
                                               summarize_confidence)
from training.eval.frames import RGBDFrame
from training.eval.onnx_runner import OnnxRunner
from training.eval.segmentation_metrics import confusion_matrix, mean_iou

_logger = logging.getLogger(__name__)

MAX_RMSE_INCREASE = 0.02
MAX_MIOU_DROP = 1.0
MIN_COSINE = 0.98
MAX_HALF_RATIO_INCREASE = 0.02
MAX_SCALE_CHANGE = 0.05


@dataclasses.dataclass
class GateReport:
    """The figures of both files and the verdict of every gate.

    Attributes:
        rmse_mm: pattern -> (parent, candidate) RMSE over all frames; keys 'dataset / pattern'
            hold the per-dataset figures (reported, not gated).
        miou: (parent, candidate) mIoU in %, or None without labelled frames / a head.
        cosine: (mean over frames, lowest frame mean) feature cosine similarity.
        frames: Completion frames; seg_frames: labelled frames.
        limits: The gate limits used.
        confidence: pattern -> {'half_ratio': (parent, candidate), 'scale': (parent,
            candidate)} over all frames, or None without ``depth_uncertainty``.
        descriptor_cosine: (mean, lowest frame mean) cosine similarity of the descriptors, or
            None without ``descriptors``.
    """

    rmse_mm: dict
    miou: tuple | None
    cosine: tuple
    frames: int
    seg_frames: int
    limits: dict
    confidence: dict | None = None
    descriptor_cosine: tuple | None = None

    def confidence_failures(self) -> list[str]:
        """Return one phrase per failed uncertainty gate (empty without the output)."""
        failed = []
        for pattern, figures in (self.confidence or {}).items():
            parent, candidate = figures['half_ratio']
            if candidate > parent + self.limits['half_ratio']:
                failed.append(f'sparsification ratio at {pattern} ({candidate:.3f} vs '
                              f'{parent:.3f}, more than +{self.limits["half_ratio"]:g})')
            parent, candidate = figures['scale']
            if abs(candidate / parent - 1) > self.limits['scale']:
                failed.append(f'calibration ratio at {pattern} ({candidate:.3f} vs '
                              f'{parent:.3f}, {100 * (candidate / parent - 1):+.2f} %, more '
                              f'than {100 * self.limits["scale"]:g} % apart)')
        return failed

    def failures(self) -> list[str]:
        """Return one phrase per failed gate (empty when every gate passes)."""
        failed = []
        for pattern, (parent, candidate) in self.rmse_mm.items():
            if ' / ' not in pattern and candidate > parent * (1 + self.limits['rmse']):
                failed.append(f'completion RMSE at {pattern} ({candidate:.1f} mm vs '
                              f'{parent:.1f} mm, +{100 * (candidate / parent - 1):.2f} % > '
                              f'{100 * self.limits["rmse"]:g} %)')
        if self.miou is not None and self.miou[1] < self.miou[0] - self.limits['miou']:
            failed.append(f'segmentation mIoU ({self.miou[1]:.2f} % vs {self.miou[0]:.2f} %, '
                          f'more than {self.limits["miou"]:g} point lower)')
        for name, cosine in (('feature', self.cosine), ('descriptor', self.descriptor_cosine)):
            if cosine is not None and cosine[0] < self.limits['cosine']:
                failed.append(f'{name} cosine similarity ({cosine[0]:.6f} < '
                              f'{self.limits["cosine"]:g})')
        return failed + self.confidence_failures()

    @property
    def passed(self) -> bool:
        """True when every gate passes."""
        return not self.failures()

    def text(self) -> str:
        """Return the figures as a markdown table."""
        lines = ['| gate | parent | candidate | change | limit |', '|---|---:|---:|---:|---:|']
        for pattern, (parent, candidate) in self.rmse_mm.items():
            limit = '-' if ' / ' in pattern else f'+{100 * self.limits["rmse"]:g} %'
            lines.append(f'| RMSE {pattern} [mm] | {parent:.1f} | {candidate:.1f} | '
                         f'{100 * (candidate / parent - 1):+.2f} % | {limit} |')
        if self.miou is not None:
            lines.append(f'| mIoU ({self.seg_frames} frames) [%] | {self.miou[0]:.2f} | '
                         f'{self.miou[1]:.2f} | {self.miou[1] - self.miou[0]:+.2f} pt | '
                         f'-{self.limits["miou"]:g} pt |')
        for name, cosine in (('feature', self.cosine), ('descriptor', self.descriptor_cosine)):
            if cosine is not None:
                lines.append(f'| {name} cosine, mean (lowest frame) | 1 | {cosine[0]:.5f} '
                             f'({cosine[1]:.5f}) | - | >= {self.limits["cosine"]:g} |')
        for pattern, figures in (self.confidence or {}).items():
            for key, name, limit in (
                    ('half_ratio', 'sparsification ratio', f'+{self.limits["half_ratio"]:g}'),
                    ('scale', 'calibration ratio', f'+-{100 * self.limits["scale"]:g} %')):
                parent, candidate = figures[key]
                change = (f'{100 * (candidate / parent - 1):+.2f} %' if key == 'scale'
                          else f'{candidate - parent:+.3f}')
                lines.append(f'| {name} {pattern} | {parent:.3f} | {candidate:.3f} | '
                             f'{change} | {limit} |')
        return '\n'.join(lines)

    def to_dict(self) -> dict:
        """Return the figures as plain JSON types."""
        return {'rmse_mm': {key: [round(v, 2) for v in value]
                            for key, value in self.rmse_mm.items()},
                'miou': None if self.miou is None else [round(v, 3) for v in self.miou],
                'cosine_mean': round(self.cosine[0], 6), 'cosine_lowest': round(self.cosine[1], 6),
                'descriptor_cosine': None if self.descriptor_cosine is None else [
                    round(value, 6) for value in self.descriptor_cosine],
                'confidence': None if self.confidence is None else {
                    pattern: {key: [round(v, 4) for v in value] for key, value in figures.items()}
                    for pattern, figures in self.confidence.items()},
                'frames': self.frames, 'seg_frames': self.seg_frames, 'limits': self.limits,
                'passed': self.passed}


def completion_rmse(frames: list[RGBDFrame], parent: OnnxRunner, candidate: OnnxRunner,
                    patterns: tuple[InputPattern, ...], seed: int) -> dict:
    """Return pattern (and 'dataset / pattern') -> (parent, candidate) mean RMSE in mm."""
    records = run_completion_protocol(
        frames, {'parent': parent.completion_method(),
                 'candidate': candidate.completion_method()}, patterns, seed)
    groups: dict[str, dict[str, list[float]]] = {}
    for record in records:
        for key in (record.pattern, f'{record.dataset} / {record.pattern}'):
            groups.setdefault(key, {'parent': [], 'candidate': []})[record.method].append(
                record.metrics['rmse_mm'])
    overall = {key: value for key, value in groups.items() if ' / ' not in key}
    by_dataset = {key: value for key, value in groups.items() if ' / ' in key}
    return {key: (float(np.mean(value['parent'])), float(np.mean(value['candidate'])))
            for key, value in {**overall, **by_dataset}.items()}


def labelled_samples(sources: list[dict], data_root: str, class_names: tuple) -> list[tuple]:
    """Return (rgb, depth, labels) of every held-out frame labelled in the model's layout.

    Only sources of a layout whose classes are the model's (e.g. YCB-Video for a YCB-Video
    head) count; labels are checked and ignored ids set to ``IGNORE_LABEL``.
    """
    layouts = [layout for layout in LABEL_LAYOUTS.values()
               if tuple(layout.class_names) == tuple(class_names)]
    if not layouts:
        return []
    samples = []
    for spec in sources:
        if spec.get('type') != layouts[0].name:
            continue
        dataset = build_source(spec, base_dir=data_root)
        for index in range(len(dataset)):
            sample = dataset[index]
            if 'label' in sample:
                samples.append((sample['rgb'], sample['depth'],
                                training_labels(sample['label'], layouts[0], sample['name'])))
    return samples


def segmentation_miou(samples: list[tuple], parent: OnnxRunner,
                      candidate: OnnxRunner) -> tuple[float, float]:
    """Return the (parent, candidate) mIoU in % over the labelled samples."""
    classes = len(parent.contract.class_names)
    matrices = [np.zeros((classes, classes), np.int64) for _ in range(2)]
    for rgb, depth, target in samples:
        for matrix, runner in zip(matrices, (parent, candidate)):
            matrix += confusion_matrix(runner.labels(rgb, depth), target, classes,
                                       IGNORE_LABEL)
    return tuple(100.0 * mean_iou(matrix) for matrix in matrices)


def feature_cosine(frames: list[RGBDFrame], parent: OnnxRunner, candidate: OnnxRunner,
                   output: str = 'features') -> tuple[float, float]:
    """Return the (mean, lowest) per-frame mean cell cosine similarity of a (D, h, w) output."""
    means = []
    for frame in frames:
        # float64: in float32 the rounding of near-equal vectors gives cosines above 1.
        ours = parent.run(frame.rgb, frame.depth_m)[0][output].astype(np.float64)
        theirs = candidate.run(frame.rgb, frame.depth_m)[0][output].astype(np.float64)
        dot = (ours * theirs).sum(axis=0)  # (h, w)
        norms = np.linalg.norm(ours, axis=0) * np.linalg.norm(theirs, axis=0)  # (h, w)
        means.append(float(np.mean(np.clip(dot / np.maximum(norms, 1e-300), -1.0, 1.0))))
    return float(np.mean(means)), float(np.min(means))


def confidence_ratios(frames: list[RGBDFrame], parent: OnnxRunner, candidate: OnnxRunner,
                      patterns: tuple[InputPattern, ...], seed: int) -> dict:
    """Return pattern -> {'half_ratio' | 'scale': (parent, candidate)} over all frames."""
    rows = [{row['pattern']: row for row in summarize_confidence(
        run_confidence_protocol(frames, runner.maps(), patterns, seed))
        if row['dataset'] == ALL_SOURCES}
        for runner in (parent, candidate)]
    return {pattern: {key: (float(row[key]), float(rows[1][pattern][key]))
                      for key in ('half_ratio', 'scale')}
            for pattern, row in rows[0].items()}


def run_gates(parent_path: str, candidate_path: str, frames: list[RGBDFrame],
              threads: int = 0, seed: int = 0, holdout_sources: list[dict] | None = None,
              data_root: str | None = None, patterns: tuple = DEFAULT_PATTERNS,
              limits: dict | None = None) -> GateReport:
    """Score ``candidate_path`` against ``parent_path`` on ``frames`` (module docstring).

    Args:
        parent_path: The float model file.
        candidate_path: The reduced-precision file of the same contract.
        frames: Held-out completion frames.
        threads: ORT intra-op threads (0: ORT's default).
        seed: Seed of the completion inputs.
        holdout_sources: Held-out sources searched for labelled frames (segmentation gate);
            None skips that gate.
        data_root: Folder the sources' roots resolve against.
        patterns: Completion input patterns.
        limits: Overrides of {'rmse': relative, 'miou': points, 'cosine': minimum,
            'half_ratio': increase, 'scale': change}.

    Raises:
        ValueError: No frames, or the files' outputs differ.
    """
    if not frames:
        raise ValueError('the accuracy gates need at least one held-out frame')
    parent, candidate = OnnxRunner(parent_path, threads), OnnxRunner(candidate_path, threads)
    if parent.model.output_names != candidate.model.output_names:
        raise ValueError(f'{candidate_path} has outputs {candidate.model.output_names}, its '
                         f'parent {parent.model.output_names}')
    limits = {'rmse': MAX_RMSE_INCREASE, 'miou': MAX_MIOU_DROP, 'cosine': MIN_COSINE,
              'half_ratio': MAX_HALF_RATIO_INCREASE, 'scale': MAX_SCALE_CHANGE,
              **(limits or {})}
    rmse = completion_rmse(frames, parent, candidate, patterns, seed)
    miou, samples = None, []
    if holdout_sources and 'seg_logits' in parent.model.output_names:
        samples = labelled_samples(holdout_sources, data_root, parent.contract.class_names)
        if samples:
            miou = segmentation_miou(samples, parent, candidate)
    cosine = feature_cosine(frames, parent, candidate)
    confidence = descriptors = None
    if 'depth_uncertainty' in parent.model.output_names:
        confidence = confidence_ratios(frames, parent, candidate, patterns, seed)
    if 'descriptors' in parent.model.output_names:
        descriptors = feature_cosine(frames, parent, candidate, 'descriptors')
    return GateReport(rmse, miou, cosine, len(frames), len(samples), limits, confidence,
                      descriptors)
