"""docs/results/confidence.md and its figure: how well the depth uncertainty ranks errors."""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)

from training.eval.confidence_protocol import ALL_SOURCES  # noqa: E402
from training.eval.report import _header, _save, grouped_table  # noqa: E402
from training.eval.sparsification import FRACTIONS  # noqa: E402

CONFIDENCE_COLUMNS = {
    'frames': ('frames', '{}', None),
    'rmse_all_mm': ('RMSE all filled [mm]', '{:.1f}', None),
    'rmse_half_mm': ('RMSE most confident 50 % [mm]', '{:.1f}', None),
    'half_ratio': ('ratio (by u)', '{:.3f}', None),
    'half_ratio_relative': ('ratio (by confidence)', '{:.3f}', None),
    'oracle_half_ratio': ('oracle ratio', '{:.3f}', None),
    'distance_half_ratio': ('ratio (by distance to input)', '{:.3f}', None),
    'ause_mm': ('AUSE by u [mm]', '{:.1f}', None),
    'ause_relative_mm': ('AUSE by confidence [mm]', '{:.1f}', None),
    'ause_distance_mm': ('AUSE by distance [mm]', '{:.1f}', None),
    'coverage': ('share with abs. error <= u (Laplace 0.63)', '{:.2f}', None),
    'scale': ('mean abs. error / mean u (1 = calibrated)', '{:.2f}', None),
}
# With a calibrated uncertainty: the same two figures for u / k, before the calibration.
BEFORE_COLUMNS = {
    'coverage_before': ('share with abs. error <= u, before calibration', '{:.2f}', None),
    'scale_before': ('mean abs. error / mean u, before calibration', '{:.2f}', None),
}
# The same uncertainty on the depth after local alignment (the node's default).
LOCAL_COLUMNS = {
    'frames': ('frames', '{}', None),
    'rmse_all_local_mm': ('RMSE all filled [mm]', '{:.1f}', None),
    'local_half_ratio': ('ratio (by u)', '{:.3f}', None),
    'ause_local_mm': ('AUSE by u [mm]', '{:.1f}', None),
}


def curve_table(rows: list[dict]) -> str:
    """One line per pattern and curve: RMSE (mm) of the most confident 10 .. 100 %."""
    lines = ['| pattern | curve | ' + ' | '.join(f'{int(f * 100)} %' for f in FRACTIONS) + ' |',
             '|---|---|' + '---:|' * len(FRACTIONS)]
    for row in rows:
        for name, key in (('by uncertainty', 'curve'), ('oracle', 'oracle')):
            lines.append(f'| {row["pattern"]} | {name} | ' +
                         ' | '.join(f'{v:.1f}' for v in row[key]) + ' |')
    return '\n'.join(lines)


def confidence_markdown(rows: list[dict], provenance: str, command: str,
                        settings: list[str], figures: list[str],
                        calibrated: bool = False) -> str:
    """Build docs/results/confidence.md from ``summarize_confidence`` rows.

    ``calibrated``: the uncertainty was calibrated; the tables also show it before.
    """
    columns = {**CONFIDENCE_COLUMNS, **BEFORE_COLUMNS} if calibrated else CONFIDENCE_COLUMNS
    parts = _header('Confidence of the completed depth (sparsification)', 'vd head',
                    provenance, command, settings)
    overall = [row for row in rows if row['dataset'] == ALL_SOURCES]
    parts += ['## All held-out sources', '',
              grouped_table(overall, 'pattern', ['pattern'], columns), '',
              '### Sparsification curves (all sources, mean over frames)', '',
              curve_table(overall), '',
              '### The same uncertainty on the locally aligned depth (depth.alignment: local)',
              '', grouped_table(overall, 'pattern', ['pattern'], LOCAL_COLUMNS), '']
    for dataset in dict.fromkeys(row['dataset'] for row in rows):
        if dataset == ALL_SOURCES:
            continue
        subset = [row for row in rows if row['dataset'] == dataset]
        parts += [f'## {dataset}', '',
                  grouped_table(subset, 'pattern', ['pattern'], columns), '']
    parts += [f'![{name}]({name})' for name in figures] + ['']
    return '\n'.join(parts)


def plot_sparsification(rows: list[dict], path: str, provenance: str) -> None:
    """Sparsification and oracle curves per input pattern (all sources)."""
    overall = [row for row in rows if row['dataset'] == ALL_SOURCES]
    figure, axes = plt.subplots(1, len(overall), figsize=(3.2 * len(overall), 3.0),
                                squeeze=False)
    shares = [100 * f for f in FRACTIONS]
    for axis, row in zip(axes[0], overall):
        axis.plot(shares, row['curve'], 'o-', label='by uncertainty')
        axis.plot(shares, row['oracle'], 's--', label='oracle (by true error)')
        axis.set_title(f'{row["pattern"]} (AUSE {row["ause_mm"]:.0f} mm)', fontsize=8)
        axis.set_xlabel('most confident share kept [%]')
        axis.set_ylim(bottom=0)
    axes[0, 0].set_ylabel('RMSE of kept pixels [mm]')
    axes[0, -1].legend(fontsize=7)
    figure.suptitle(f'Sparsification, held-out split; model: {provenance}', fontsize=8)
    _save(figure, path)
