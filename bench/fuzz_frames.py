"""Bad RGB-D frames of every kind the node must survive, and the drop cause each must get.

Each kind in :data:`KINDS` turns a real good frame (RGB, 16UC1 depth, camera_info messages)
into a bad or unusual one: every cause of the README's list, random encodings, ``step`` lies,
truncated data, 0x0, 1x1 and 8K images, NaN/Inf depth and intrinsics, stamps from the past
and future, mismatched sizes. ``cause`` is the drop cause the node must count it under, or
None when the frame is valid and must be processed (an unusual but legal frame).

:func:`send` publishes one frame of a kind with a fresh stamp; ``make soak`` (bench/soak.py)
and the short fuzz test (test/test_fuzz.py) mix them into a stream of good frames.
"""

import copy
import time
from typing import Callable, NamedTuple

import numpy as np

from vd_ros.image_codec import array_to_image

HOUR_NS = 3600 * 10**9


class Kind(NamedTuple):
    """One kind of frame: the cause it must be dropped for (None: processed), and its maker."""

    cause: str
    build: Callable  # (rgb, depth, info, rng) -> stamp offsets {'rgb','depth','info'} in ns


def _image(array: np.ndarray, encoding: str, like) -> object:
    return array_to_image(array, encoding, like.header)


def _rgb_encoding(rgb, depth, info, rng):
    rgb.encoding = str(rng.choice(['rgb16', '8UC3', 'yuv422', 'bayer_rggb8', '32FC1',
                                   'jpeg', '']))


def _depth_encoding(rgb, depth, info, rng):
    depth.encoding = str(rng.choice(['8UC1', 'mono8', '32FC3', 'rgb8', '16SC1', '64FC1']))


def _step_short(rgb, depth, info, rng):
    target = rgb if rng.random() < 0.5 else depth
    target.step = int(rng.integers(0, target.step))  # less than one row of pixels


def _step_long(rgb, depth, info, rng):
    target = rgb if rng.random() < 0.5 else depth
    target.step += int(rng.integers(1, 4096))  # rows that would run past the data


def _truncated(rgb, depth, info, rng):
    target = rgb if rng.random() < 0.5 else depth
    target.data = bytes(target.data)[:int(rng.integers(0, len(target.data)))]


def _zero_size(rgb, depth, info, rng):
    rgb.height = rgb.width = rgb.step = depth.height = depth.width = depth.step = 0
    rgb.data, depth.data = b'', b''


def _resized(rgb, depth, info, height: int, width: int, rng) -> None:
    """Make all three messages ``height`` x ``width`` (real colours and depth tiled)."""
    colour = np.frombuffer(bytes(rgb.data), np.uint8).reshape(rgb.height, rgb.width, 3)
    metres = np.frombuffer(bytes(depth.data), np.uint16).reshape(depth.height, depth.width)
    rows = np.arange(height) % rgb.height
    cols = np.arange(width) % rgb.width
    new_rgb = _image(np.ascontiguousarray(colour[rows][:, cols]), 'rgb8', rgb)
    new_depth = _image(np.ascontiguousarray(metres[rows][:, cols]), '16UC1', depth)
    if height == width == 1:
        new_depth = _image(np.full((1, 1), 1500, np.uint16), '16UC1', depth)
    for message, new in ((rgb, new_rgb), (depth, new_depth)):
        message.height, message.width, message.step = new.height, new.width, new.step
        message.data = new.data
    scale = width / info.width
    k = np.array(info.k, dtype=np.float64) * [scale, 1, scale, 1, scale, scale, 1, 1, 1]
    info.k = k.tolist()
    info.width, info.height = width, height


def _one_pixel(rgb, depth, info, rng):
    _resized(rgb, depth, info, 1, 1, rng)


def _8k(rgb, depth, info, rng):
    _resized(rgb, depth, info, 4320, 7680, rng)


def _depth_zero(rgb, depth, info, rng):
    depth.data = bytes(len(depth.data))


def _depth_nan_inf(rgb, depth, info, rng):
    values = rng.choice([np.nan, np.inf, -np.inf], size=(depth.height, depth.width))
    new = _image(values.astype(np.float32), '32FC1', depth)
    depth.encoding, depth.step, depth.data = new.encoding, new.step, new.data


def _depth_partly_nan(rgb, depth, info, rng):
    metres = np.frombuffer(bytes(depth.data), np.uint16).reshape(
        depth.height, depth.width).astype(np.float32) / 1000
    holes = rng.random(metres.shape) < 0.3
    metres[holes] = rng.choice([np.nan, np.inf, -np.inf], size=int(holes.sum()))
    new = _image(metres, '32FC1', depth)
    depth.encoding, depth.step, depth.data = new.encoding, new.step, new.data


def _big_endian(rgb, depth, info, rng):
    metres = np.frombuffer(bytes(depth.data), np.uint16)
    depth.data = metres.byteswap().tobytes()
    depth.is_bigendian = 1


def _k_not_finite(rgb, depth, info, rng):
    k = list(info.k)
    k[int(rng.choice([0, 2, 4, 5]))] = float(rng.choice([np.nan, np.inf, -np.inf]))
    info.k = k


def _k_zero_focal(rgb, depth, info, rng):
    k = list(info.k)
    k[0] = 0.0
    info.k = k


def _info_size(rgb, depth, info, rng):
    info.width //= 2


def _depth_size(rgb, depth, info, rng):
    metres = np.frombuffer(bytes(depth.data), np.uint16).reshape(depth.height, depth.width)
    new = _image(np.ascontiguousarray(metres[::2, ::2]), '16UC1', depth)
    depth.height, depth.width, depth.step, depth.data = (new.height, new.width, new.step,
                                                         new.data)


def _past(rgb, depth, info, rng):
    return dict.fromkeys(('rgb', 'depth', 'info'), -HOUR_NS)


def _future(rgb, depth, info, rng):
    return dict.fromkeys(('rgb', 'depth', 'info'), HOUR_NS)


def _unsynced(rgb, depth, info, rng):
    return {'rgb': 0, 'depth': 5 * 10**8, 'info': 0}  # depth 0.5 s after the colour image


KINDS = {
    'rgb_encoding': Kind('bad_encoding', _rgb_encoding),
    'depth_encoding': Kind('bad_encoding', _depth_encoding),
    'step_short': Kind('bad_encoding', _step_short),
    'step_long': Kind('bad_encoding', _step_long),
    'truncated': Kind('bad_encoding', _truncated),
    'zero_size': Kind('bad_encoding', _zero_size),
    'depth_size': Kind('size_mismatch', _depth_size),
    'depth_zero': Kind('empty_depth', _depth_zero),
    'depth_nan_inf': Kind('empty_depth', _depth_nan_inf),
    'k_not_finite': Kind('non_finite', _k_not_finite),
    'k_zero_focal': Kind('camera_info_mismatch', _k_zero_focal),
    'info_size': Kind('camera_info_mismatch', _info_size),
    'unsynced': Kind('unsynced', _unsynced),
    'one_pixel': Kind(None, _one_pixel),
    'depth_partly_nan': Kind(None, _depth_partly_nan),
    'big_endian': Kind(None, _big_endian),
    'past_stamp': Kind(None, _past),
    'future_stamp': Kind(None, _future),
    '8k': Kind('oversized', _8k),
}


# Kinds whose images are good and whose camera_info is bad.
CAMERA_INFO_KINDS = frozenset({'k_not_finite', 'k_zero_focal', 'info_size'})


def _no_camera_info(rgb, depth, info, rng):
    return {'info': None}


# Built once and reused (building an 8K frame takes longer than a frame period).
REUSE = frozenset({'8k'})
_REUSED = {}
# Sent first, before any camera_info: later the node rightly uses the unchanged newest one.
FIRST = 'no_camera_info'
FIRST_KIND = Kind('camera_info_missing', _no_camera_info)


def send(frames, good, kind: str, now_ns: int, rng) -> int:
    """Publish one frame of ``kind`` (``'good'`` for the frame as it is); return its stamp.

    Args:
        frames: A :class:`vd_ros.replay.FramePublisher`.
        good: (rgb, depth, info) messages of a real frame (not changed).
        kind: A key of :data:`KINDS` or ``'good'``.
        now_ns: The stamp of a good frame now, in nanoseconds.
        rng: ``numpy.random.Generator``.

    Returns:
        The colour image's stamp in nanoseconds (the stamp its outputs carry).
    """
    key = kind if kind in REUSE else (kind, id(good[0]))
    if key in _REUSED:  # only the stamps change below
        rgb, depth, info, offsets = _REUSED[key]
    else:
        rgb, depth, info = (copy.deepcopy(msg) for msg in good)
        offsets = (kind_of(kind).build(rgb, depth, info, rng) if kind != 'good' else None) or {}
        if kind in REUSE:
            _REUSED[key] = rgb, depth, info, offsets
    for name, msg in (('rgb', rgb), ('depth', depth), ('info', info)):
        stamp = now_ns + (offsets.get(name) or 0)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
    frames.rgb.publish(rgb)  # driver order, as vd_ros.replay.FramePublisher: images, then info
    frames.depth.publish(depth)
    if 'info' not in offsets or offsets['info'] is not None:
        frames.info.publish(info)
    return now_ns + offsets.get('rgb', 0)


def kind_of(name: str) -> Kind:
    """Return the :class:`Kind` called ``name`` (:data:`KINDS` or :data:`FIRST`)."""
    return FIRST_KIND if name == FIRST else KINDS[name]


def schedule(count: int, bad_fraction: float, rng, kinds=None, settle: int = 45) -> list:
    """Return the kinds of ``count`` frames to send, in order.

    :data:`FIRST`, then good frames with about ``bad_fraction`` of random bad ones (from
    ``kinds``, default all of :data:`KINDS`), every kind at least once when there is room, and
    ``settle`` good frames at the end (so late causes such as ``unsynced`` are counted).
    """
    kinds = list(KINDS if kinds is None else kinds)
    middle = count - 1 - settle
    bad = max(len(kinds), int(round(middle * bad_fraction)))
    chosen = kinds + list(rng.choice(kinds, size=max(0, bad - len(kinds))))
    slots = rng.choice(np.arange(1, middle), size=min(len(chosen), middle - 1), replace=False)
    plan = ['good'] * count
    plan[0] = FIRST
    for slot, kind in zip(slots, rng.permutation(chosen)):
        plan[slot] = str(kind)
    return plan


def play(frames, goods: list, plan: list, rate_hz: float, clock, rng, every=None,
         settle: int = 45, cut: bool = True) -> tuple:
    """Publish the frames of ``plan`` at ``rate_hz`` for ``len(plan) / rate_hz`` seconds.

    Frame ``i`` is built from ``goods[i % len(goods)]``. Never faster than ``rate_hz``: a
    frame that took long to build (8K) delays the next ones instead of causing a burst, as a
    camera would. When the sender falls behind (a loaded machine) and ``cut``, the plan is cut
    so the time holds: its last ``settle`` (good) frames still go out at the end. After
    :data:`FIRST` (no camera_info) nothing is sent for a second, so the node gives up waiting
    and counts it. ``every(index)``, when given, runs after each frame (progress, RSS).

    Returns:
        (kinds sent, colour stamp in ns of each).
    """
    sent, stamps = [], []
    due = start = time.monotonic()
    deadline = start + (len(plan) - settle) / rate_hz
    for index, kind in enumerate(plan):
        if cut and index < len(plan) - settle and time.monotonic() > deadline:
            continue
        time.sleep(max(0.0, due - time.monotonic()))
        now_ns = clock.now().nanoseconds
        stamped_at = time.monotonic()
        stamps.append(send(frames, goods[index % len(goods)], kind, now_ns, rng))
        sent.append(kind)
        # A sender that fell behind stamps the next frame a period after this one, not at
        # once: frames closer than the node's slop would take each other's camera_info.
        due = max(due + 1.0 / rate_hz, stamped_at + 1.0 / rate_hz)
        if kind == FIRST:
            due += 1.0
            deadline += 1.0
        if every is not None:
            every(len(sent) - 1)
    return sent, stamps


def settled_pairs(values: dict) -> int:
    """Return the pairs the node has finished with: processed, unobserved or dropped.

    ``unsynced`` drops are frames that never became a pair, so they do not count here.
    """
    return int(values.get('frames_processed', 0)) + int(values.get('frames_unobserved', 0)) + sum(
        int(value) for key, value in values.items()
        if key.startswith('drops.') and key != 'drops.unsynced')


def all_pairs_settled(values: dict) -> bool:
    """Return True when the diagnostics ``values`` account for every pair received."""
    return int(values.get('pairs_received', 0)) == settled_pairs(values)


def account(plan: list, stamps: list, values: dict, processed_stamps: set) -> tuple:
    """Check the node's counters against what was sent; return (table, problems).

    Args:
        plan: Kind of every frame sent, in order.
        stamps: Colour image stamp (ns) of every frame sent.
        values: The node's final ``/diagnostics`` values (``drops.<cause>``, ``pairs_received``,
            ``frames_processed``, ``frames_unobserved``, ``camera_info_borrowed``).
        processed_stamps: Stamps (ns) of the outputs received.

    Returns:
        ``table``: cause -> (frames sent that must be dropped for it, frames counted);
        ``problems``: human-readable violations (empty when all is well). A frame overwritten
        in the mailbox before the worker took it is rightly counted ``stale`` whatever it held,
        so per cause ``counted <= sent`` must hold exactly and ``sent - counted`` may be made
        up by stale drops and frames lost whole only. ``unsynced`` frames never pair, so none
        is stale; a good frame whose image was lost on the way (an overloaded node) is rightly
        counted ``unsynced`` too, so there ``counted <= frames that never became a pair``,
        with equality to ``sent`` when no other frame failed to pair (a frame lost whole,
        camera_info included, is invisible to the node). A frame whose own camera_info came
        too late is judged by another's: the camera_info causes may be over-counted, and their
        frames processed, only as often as the node says it used another frame's.
    """
    drops = {key[len('drops.'):]: int(value) for key, value in values.items()
             if key.startswith('drops.')}
    expected = dict.fromkeys(drops, 0)
    for kind in plan:
        if kind != 'good' and kind_of(kind).cause:
            expected[kind_of(kind).cause] += 1
    table = {cause: (expected[cause], drops[cause]) for cause in drops if cause != 'stale'}
    pairs = int(values['pairs_received'])
    unpaired = len(plan) - pairs
    info_causes = {kind_of(kind).cause for kind in CAMERA_INFO_KINDS}
    problems = [f'{cause}: {counted} counted but only {sent} such frames sent'
                for cause, (sent, counted) in table.items()
                if counted > sent and cause != 'unsynced' and cause not in info_causes]
    unsynced_sent, unsynced_counted = table['unsynced']
    if (unsynced_counted > unpaired or unsynced_sent > unpaired or
            (unpaired == unsynced_sent and unsynced_counted != unsynced_sent)):
        problems.append(f'unsynced: {unsynced_counted} counted, {unsynced_sent} sent, '
                        f'{unpaired} frames never became a pair')
    # A frame whose own camera_info never reached the node (lost, or later than the wait) is
    # rightly judged by another frame's: a bad one processed with a good one, a good one dropped
    # for a bad one. The node counts those frames (camera_info_borrowed), which bounds both.
    processed_bad = [kind for kind, stamp in zip(plan, stamps)
                     if kind != 'good' and kind_of(kind).cause and stamp in processed_stamps]
    processed_info = sum(kind in CAMERA_INFO_KINDS for kind in processed_bad)
    judged_by_another = processed_info + sum(max(0, counted - sent)
                                             for cause, (sent, counted) in table.items()
                                             if cause in info_causes)
    borrowed = int(values['camera_info_borrowed'])
    if judged_by_another > borrowed:
        problems.append(f"{judged_by_another} frames judged by another frame's camera_info, "
                        f'more than the {borrowed} the node gave another one')
    wrongly = sorted({kind for kind in processed_bad if kind not in CAMERA_INFO_KINDS})
    if wrongly:
        problems.append(f'bad frames processed as good: {wrongly}')
    # Frames lost whole (camera_info too) on the way never reach the node, like stale ones.
    lost_whole = unpaired - unsynced_counted
    missing = sum(sent - counted for cause, (sent, counted) in table.items()
                  if sent > counted and cause != 'unsynced') - processed_info
    if missing > drops['stale'] + lost_whole:
        problems.append(f'{missing} bad frames not counted under their cause, more than the '
                        f'{drops["stale"]} stale drops and {lost_whole} frames lost whole '
                        'that may hide them')
    settled = settled_pairs(values)
    if pairs != settled:
        problems.append(f'{pairs} pairs received but {settled} processed or dropped')
    return table, problems
