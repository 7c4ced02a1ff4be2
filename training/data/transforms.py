"""Augmentations that keep RGB, depth, validity and labels pixel-aligned (paper section 4).

Training order (per sample): horizontal and vertical flips (p 0.5 each) -> random resized crop
(area scale 0.08-1, aspect 3/4-4/3 times the output aspect, torchvision's sampling) -> resize
to fit ``size`` (S x S, or H x W) (bicubic RGB, *nearest* depth and labels: depth is never
interpolated) -> depth range handling (paper section 2) -> colour jitter (p 1; brightness 0.4,
contrast 0.4, saturation 0.2, hue 0.1, random order) and random grayscale (p 0.2), on RGB only
-> zero-pad to the output size.

Choices where the paper leaves room (documented, not hidden):

- Non-square crops are resized with their aspect ratio kept and then zero-padded at the
  bottom/right ("zero-padded to square", or to H x W); padding comes last so that colour
  jitter (contrast uses the image mean) never sees or changes the padding: padded RGB is 0,
  padded depth is 0 (invalid), ``valid`` is False and labels take ``label_fill``. Flips are
  drawn before the crop as in the paper; the distribution equals flipping after it.
- Colour jitter runs after the resize rather than first: all its operations are per-pixel
  except contrast, whose mean is taken over the crop instead of the full image.
- ``K`` follows every step with the pixel-centre convention: crop shifts the principal point,
  resize scales it as ``(c + 0.5) * s - 0.5``, a horizontal flip maps ``cx -> W - 1 - cx`` and
  ``fx -> -fx`` (a mirrored image is the projection of a mirrored world: back-projection with
  the new K stays exact), likewise for vertical flips.
- A non-square output (H, W) scales the crop aspect range by W / H, so crops mostly fill it
  (a 4:3 camera frame resized to 126 x 168 needs no padding at all).
- Evaluation (``train=False``) keeps the whole image: resize + pad, no flips, no jitter, no
  rescaling; depth beyond ``max_depth_m`` is invalid (set to 0, never clamped).

Outputs (tensors ready for ``default_collate``): ``rgb`` float32 (3, H, W) in [0, 1] (ImageNet
normalisation happens inside the model), ``depth`` float32 (1, H, W) metres, ``valid`` bool
(1, H, W), and when present in the input ``K`` float32 (3, 3), ``label`` int64 (H, W),
``pose`` float32 (4, 4); ``name`` and ``source`` pass through.
"""

import dataclasses
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import get_worker_info
import torchvision.transforms.v2.functional as TF

_RGB_INTERPOLATIONS = {'bicubic': cv2.INTER_CUBIC, 'bilinear': cv2.INTER_LINEAR,
                       'area': cv2.INTER_AREA}


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """Parameters of the RGB-D augmentation (paper section 4 defaults).

    Attributes:
        size: Output size: S for S x S, or (H, W) (e.g. (126, 168) for 4:3 cameras).
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height) for a square output, drawn
            log-uniformly; multiplied by W / H for an (H, W) output.
        hflip: Probability of a horizontal flip.
        vflip: Probability of a vertical flip.
        jitter: Probability of colour jitter.
        brightness: Brightness factor range 1 +- brightness.
        contrast: Contrast factor range 1 +- contrast.
        saturation: Saturation factor range 1 +- saturation.
        hue: Hue shift range +- hue (fraction of a turn, <= 0.5).
        grayscale: Probability of converting RGB to grey (3 equal channels).
        max_depth_m: Depth range; deeper values become 0 (invalid).
        rescale_threshold: In training, maps whose maximum exceeds
            ``rescale_threshold * max_depth_m`` are rescaled ...
        rescale_range: ... so that their maximum becomes ``max_depth_m * U(rescale_range)``.
        rgb_interpolation: ``bicubic`` (paper), ``bilinear`` or ``area``.
        label_fill: Label value of padded pixels.
        seed: Base seed of the default random generator (None: fresh entropy).
    """

    size: int | tuple = 224
    scale: tuple = (0.08, 1.0)
    ratio: tuple = (3.0 / 4.0, 4.0 / 3.0)
    hflip: float = 0.5
    vflip: float = 0.5
    jitter: float = 1.0
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale: float = 0.2
    max_depth_m: float = 15.0
    rescale_threshold: float = 0.95
    rescale_range: tuple = (0.9, 1.0)
    rgb_interpolation: str = 'bicubic'
    label_fill: int = 0
    seed: int | None = None

    def __post_init__(self):
        """Validate the parameters."""
        if min(self.output_hw) <= 0:
            raise ValueError(f'transform size must be positive, got {self.size}')
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f'crop scale must satisfy 0 < lo <= hi <= 1, got {self.scale}')
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f'crop ratio must satisfy 0 < lo <= hi, got {self.ratio}')
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f'hue must be in [0, 0.5], got {self.hue}')
        if self.rgb_interpolation not in _RGB_INTERPOLATIONS:
            raise ValueError(f'rgb_interpolation must be one of {sorted(_RGB_INTERPOLATIONS)}, '
                             f'got {self.rgb_interpolation!r}')
        if self.max_depth_m <= 0.0 or not 0.0 < self.rescale_range[0] <= self.rescale_range[1]:
            raise ValueError(f'bad depth range max_depth_m={self.max_depth_m}, '
                             f'rescale_range={self.rescale_range}')

    @property
    def output_hw(self) -> tuple:
        """Output (height, width)."""
        if isinstance(self.size, (tuple, list)):
            if len(self.size) != 2:
                raise ValueError(f'transform size must be S or (H, W), got {self.size}')
            return int(self.size[0]), int(self.size[1])
        return int(self.size), int(self.size)

    @classmethod
    def from_dict(cls, values) -> 'TransformConfig':
        """Build from a mapping; unknown keys raise ``ValueError``, lists become tuples."""
        values = {key: values[key] for key in values.keys()}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'unknown transform parameters {sorted(unknown)}')
        return cls(**{k: tuple(v) if not isinstance(v, (str, int, float, type(None))) else v
                      for k, v in values.items()})


def sample_crop(height: int, width: int, scale: tuple, ratio: tuple,
                rng: np.random.Generator) -> tuple:
    """Draw a random resized crop box the way torchvision's ``RandomResizedCrop`` does.

    Args:
        height: Image height.
        width: Image width.
        scale: Area fraction range.
        ratio: Aspect ratio (w / h) range, drawn log-uniformly.
        rng: Random generator.

    Returns:
        ``(top, left, crop_height, crop_width)``; after 10 failed draws the central crop
        with the ratio clamped to ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_w = int(round(math.sqrt(target * aspect)))
        crop_h = int(round(math.sqrt(target / aspect)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return top, left, crop_h, crop_w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        crop_w, crop_h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        crop_h, crop_w = height, int(round(height * ratio[1]))
    else:
        crop_w, crop_h = width, height
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def flip(sample: dict, horizontal: bool) -> dict:
    """Mirror every pixel map of a numpy sample (and its ``K``) left-right or up-down.

    Args:
        sample: Numpy sample (``rgb`` (H, W, 3), ``depth``, ``valid``, optional ``label``,
            ``K``).
        horizontal: True for left-right, False for up-down.

    Returns:
        A new sample dict.
    """
    axis = 1 if horizontal else 0
    out = dict(sample)
    for key in ('rgb', 'depth', 'valid', 'label'):
        if key in sample:
            out[key] = np.flip(sample[key], axis=axis)
    if 'K' in sample:
        K = np.array(sample['K'], dtype=np.float64)
        row = 0 if horizontal else 1
        extent = sample['depth'].shape[1 - row]
        K[row, row] = -K[row, row]
        K[row, 2] = extent - 1 - K[row, 2]
        out['K'] = K
    return out


def crop(sample: dict, box: tuple) -> dict:
    """Cut the box ``(top, left, height, width)`` out of every pixel map; shift ``K``."""
    top, left, crop_h, crop_w = box
    out = dict(sample)
    for key in ('rgb', 'depth', 'valid', 'label'):
        if key in sample:
            out[key] = sample[key][top:top + crop_h, left:left + crop_w]
    if 'K' in sample:
        K = np.array(sample['K'], dtype=np.float64)
        K[0, 2] -= left
        K[1, 2] -= top
        out['K'] = K
    return out


def resize_to_fit(sample: dict, size, rgb_interpolation: str = 'bicubic') -> dict:
    """Resize to the largest size that fits in ``size``, keeping the aspect ratio.

    RGB uses ``rgb_interpolation``; depth, validity and labels use OpenCV's
    ``INTER_NEAREST_EXACT`` (pixel-centre nearest neighbour, the same sampling grid as the RGB
    interpolation), so every output depth is one of the input depths.

    Args:
        sample: Numpy sample.
        size: Box (height, width) to fit in; an int S is the box S x S (longer side S).
        rgb_interpolation: Key of ``_RGB_INTERPOLATIONS``.

    Returns:
        A new sample dict with ``K`` scaled.
    """
    box_h, box_w = (size, size) if isinstance(size, int) else size
    height, width = sample['depth'].shape
    factor = min(box_h / height, box_w / width)
    new_h = min(box_h, max(1, round(height * factor)))
    new_w = min(box_w, max(1, round(width * factor)))
    out = dict(sample)
    out['rgb'] = cv2.resize(np.ascontiguousarray(sample['rgb']), (new_w, new_h),
                            interpolation=_RGB_INTERPOLATIONS[rgb_interpolation])
    for key in ('depth', 'valid', 'label'):
        if key in sample:
            array = np.ascontiguousarray(sample[key])
            work = array.view(np.uint8) if array.dtype == bool else array
            if work.dtype == np.int64:  # OpenCV has no int64 resize: indices fit in int32
                work = work.astype(np.int32)
            resized = cv2.resize(work, (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT)
            out[key] = resized.astype(array.dtype)
    if 'K' in sample:
        K = np.array(sample['K'], dtype=np.float64)
        for row, scale in ((0, new_w / width), (1, new_h / height)):
            K[row, :2] *= scale
            K[row, 2] = (K[row, 2] + 0.5) * scale - 0.5
        out['K'] = K
    return out


def depth_range(depth: np.ndarray, max_depth_m: float = 15.0, rescale_threshold: float = 0.95,
                rescale_range: tuple = (0.9, 1.0), rng: np.random.Generator = None
                ) -> np.ndarray:
    """Paper section 2 range handling of a metric depth map.

    With ``rng`` (training): if the map's maximum exceeds ``rescale_threshold * max_depth_m``
    the whole map is scaled so its maximum becomes ``max_depth_m * U(rescale_range)``. Then
    (always) values above ``max_depth_m`` become 0. Zeros stay zero.

    Args:
        depth: (H, W) float32 metres, 0 = invalid.
        max_depth_m: Largest valid depth.
        rescale_threshold: Fraction of ``max_depth_m`` above which a map is rescaled.
        rescale_range: Range of the new maximum as a fraction of ``max_depth_m``.
        rng: Random generator; None disables rescaling (evaluation).

    Returns:
        A new float32 map.
    """
    depth = np.array(depth, dtype=np.float32)
    peak = float(depth.max()) if depth.size else 0.0
    if rng is not None and peak > rescale_threshold * max_depth_m:
        target = max_depth_m * rng.uniform(rescale_range[0], rescale_range[1])
        depth *= np.float32(target / peak)
    depth[~(depth <= max_depth_m)] = 0.0
    return depth


def color_jitter(rgb: torch.Tensor, config: TransformConfig,
                 rng: np.random.Generator) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue in random order, then random grey.

    Args:
        rgb: (3, H, W) float RGB in [0, 1].
        config: Jitter strengths and probabilities.
        rng: Random generator.

    Returns:
        (3, H, W) float RGB in [0, 1].
    """
    if rng.random() < config.jitter:
        ops = [
            (TF.adjust_brightness, config.brightness, False),
            (TF.adjust_contrast, config.contrast, False),
            (TF.adjust_saturation, config.saturation, False),
            (TF.adjust_hue, config.hue, True),
        ]
        for index in rng.permutation(len(ops)):
            op, strength, centred = ops[index]
            if strength > 0:
                factor = (rng.uniform(-strength, strength) if centred
                          else rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength))
                rgb = op(rgb, float(factor))
    if rng.random() < config.grayscale:
        rgb = TF.rgb_to_grayscale(rgb, num_output_channels=3)  # (3, H, W)
    return rgb.clamp(0.0, 1.0)


def _numpy_rng(rng) -> np.random.Generator:
    """Return a numpy Generator from a numpy or torch generator."""
    if isinstance(rng, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=rng)))
    return rng


class RGBDTransform:
    """The training or evaluation transform of RGB-D samples (module docstring).

    Call ``transform(sample)`` (random state per process and DataLoader worker, seeded from
    ``config.seed`` and the worker seed) or ``transform(sample, rng)`` with a
    ``numpy.random.Generator`` or ``torch.Generator`` for reproducible draws.

    Attributes:
        config: The parameters.
        train: Random augmentation (True) or deterministic evaluation (False).
    """

    def __init__(self, config: TransformConfig = TransformConfig(), train: bool = True):
        """Store the parameters.

        Args:
            config: Parameters.
            train: Training or evaluation behaviour.
        """
        self.config = config
        self.train = bool(train)
        self._rng = None
        self._rng_key = None

    def _default_rng(self) -> np.random.Generator:
        """Return this process's generator, reseeded in each new DataLoader worker."""
        info = get_worker_info()
        key = info.seed if info is not None else None
        if self._rng is None or key != self._rng_key:
            entropy = [s for s in (self.config.seed, key) if s is not None]
            self._rng = np.random.default_rng(entropy or None)
            self._rng_key = key
        return self._rng

    def __call__(self, sample: dict, rng=None) -> dict:
        """Transform one numpy sample into fixed-size tensors.

        Args:
            sample: Reader output (``rgb`` uint8 (H, W, 3), ``depth`` float32 (H, W) metres,
                optional ``valid``, ``K``, ``label``, ``pose``, ``name``, ``source``).
            rng: Optional numpy or torch generator (training only).

        Returns:
            The tensor sample (module docstring).
        """
        cfg = self.config
        out_h, out_w = cfg.output_hw
        sample = dict(sample)
        sample.setdefault('valid', sample['depth'] > 0.0)
        rng = _numpy_rng(rng) if rng is not None else self._default_rng()
        if self.train:
            if rng.random() < cfg.hflip:
                sample = flip(sample, horizontal=True)
            if rng.random() < cfg.vflip:
                sample = flip(sample, horizontal=False)
            height, width = sample['depth'].shape
            ratio = tuple(r * out_w / out_h for r in cfg.ratio)
            sample = crop(sample, sample_crop(height, width, cfg.scale, ratio, rng))
        sample = resize_to_fit(sample, (out_h, out_w), cfg.rgb_interpolation)
        depth = depth_range(sample['depth'], cfg.max_depth_m, cfg.rescale_threshold,
                            cfg.rescale_range, rng if self.train else None)
        valid = sample['valid'] & (depth > 0.0)
        rgb = torch.from_numpy(np.ascontiguousarray(sample['rgb'])).permute(2, 0, 1)  # (3, h, w)
        rgb = rgb.float() / 255.0
        if self.train:
            rgb = color_jitter(rgb, cfg, rng)
        height, width = depth.shape
        pad = (0, out_w - width, 0, out_h - height)  # right and bottom
        out = {
            'rgb': F.pad(rgb, pad),  # (3, H, W)
            'depth': F.pad(torch.from_numpy(depth)[None], pad),  # (1, H, W)
            'valid': F.pad(torch.from_numpy(np.ascontiguousarray(valid))[None], pad),  # (1, H, W)
        }
        if 'label' in sample:
            label = torch.from_numpy(np.ascontiguousarray(sample['label'])).long()
            out['label'] = F.pad(label, pad, value=cfg.label_fill)  # (H, W)
        for key in ('K', 'pose'):
            if key in sample:
                out[key] = torch.as_tensor(np.asarray(sample[key]), dtype=torch.float32)
        for key in ('name', 'source'):
            if key in sample:
                out[key] = sample[key]
        return out


def build_transform(cfg=None, train: bool = True) -> RGBDTransform:
    """Build the transform from a config section.

    Args:
        cfg: Mapping of ``TransformConfig`` fields (e.g. ``{size: 224, scale: [0.08, 1.0]}``),
            a ``TransformConfig``, or None for the paper defaults.
        train: Training (random) or evaluation (deterministic) transform.

    Returns:
        The transform.

    Raises:
        ValueError: Unknown or invalid parameters.
    """
    if cfg is None:
        config = TransformConfig()
    elif isinstance(cfg, TransformConfig):
        config = cfg
    else:
        config = TransformConfig.from_dict(cfg)
    return RGBDTransform(config, train)
