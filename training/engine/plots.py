"""PNG figures of a run: the sample panel and the loss curve (matplotlib, Agg backend)."""

from typing import Dict, List, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402
import torch  # noqa: E402

PANEL_COLUMNS = ('RGB', 'masked input depth', 'prediction', 'ground truth', '|error|')


def save_panel(path: str, rgb: torch.Tensor, input_depth: torch.Tensor,
               prediction: torch.Tensor, target: torch.Tensor, max_rows: int = 4,
               title: str = '') -> None:
    """Save a grid: one row per sample, columns ``PANEL_COLUMNS``.

    Depths share one colour range per row (the target's valid range); removed and invalid input
    pixels are black; the error is shown on valid target pixels only.

    Args:
        path: PNG file.
        rgb: (B, 3, H, W) in [0, 1].
        input_depth: (B, H, W) masked input depth, metres.
        prediction: (B, H, W) predicted depth, metres.
        target: (B, H, W) target depth, metres (0 = invalid).
        max_rows: Samples shown.
        title: Figure title.
    """
    rows = min(max_rows, rgb.shape[0])
    figure, axes = plt.subplots(rows, len(PANEL_COLUMNS), squeeze=False,
                                figsize=(2.4 * len(PANEL_COLUMNS), 2.4 * rows))
    cmap = matplotlib.colormaps['turbo'].with_extremes(bad='black')
    for row in range(rows):
        truth = target[row].float().cpu().numpy()
        valid = truth > 0
        low, high = (truth[valid].min(), truth[valid].max()) if valid.any() else (0.0, 1.0)
        given = input_depth[row].float().cpu().numpy()
        pred = prediction[row].float().cpu().numpy()
        images = [
            (rgb[row].float().cpu().permute(1, 2, 0).clamp(0, 1).numpy(), {}),  # (H, W, 3)
            (np.ma.masked_where(given <= 0, given), {'vmin': low, 'vmax': high}),
            (pred, {'vmin': low, 'vmax': high}),
            (np.ma.masked_where(~valid, truth), {'vmin': low, 'vmax': high}),
            (np.ma.masked_where(~valid, np.abs(pred - truth)),
             {'vmin': 0.0, 'vmax': 0.25 * (high - low) or 1.0}),
        ]
        for column, (image, limits) in enumerate(images):
            axis = axes[row, column]
            axis.imshow(image, cmap=None if column == 0 else cmap, **limits)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(PANEL_COLUMNS[column], fontsize=9)
        axes[row, 0].set_ylabel(f'{low:.2f}-{high:.2f} m', fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _ema(values: Sequence[float], decay: float) -> np.ndarray:
    """Exponential moving average with bias correction."""
    out, state = [], 0.0
    for index, value in enumerate(values, start=1):
        state = decay * state + (1.0 - decay) * value
        out.append(state / (1.0 - decay ** index))
    return np.asarray(out)


def save_loss_curve(path: str, history: List[Dict[str, float]], title: str = '') -> None:
    """Plot the training loss (raw and smoothed) and the validation loss over steps.

    Args:
        path: PNG file.
        history: Metric rows with ``step`` and ``loss`` (and optionally ``val_loss``).
        title: Figure title.
    """
    train = [(row['step'], row['loss']) for row in history
             if 'loss' in row and np.isfinite(row['loss'])]
    val = [(row['step'], row['val_loss']) for row in history
           if 'val_loss' in row and np.isfinite(row['val_loss'])]
    figure, axis = plt.subplots(figsize=(6.0, 3.6))
    if train:
        steps, losses = np.asarray(train).T
        axis.plot(steps, losses, color='tab:blue', alpha=0.3, linewidth=0.8, label='train')
        axis.plot(steps, _ema(losses, 0.9), color='tab:blue', label='train (EMA 0.9)')
    if val:
        steps, losses = np.asarray(val).T
        axis.plot(steps, losses, 'o-', color='tab:orange', label='validation')
    axis.set_xlabel('optimiser step')
    axis.set_ylabel('multi-scale SILog loss')
    axis.grid(alpha=0.3)
    axis.legend()
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
