"""Pair colour, depth and extra files: by glob wildcards, or by nearest timestamp.

Glob pairing: every ``*`` (and ``**/``) of a pattern captures part of the path; files whose
captures are equal belong to one frame. ``frame-*.color.jpg`` and ``frame-*.depth.png`` pair
``frame-000012.color.jpg`` with ``frame-000012.depth.png``; ``seq-*/frame-*.color.png`` keys
on the sequence too. Patterns are relative to the root; ``?`` matches one character.
"""

import bisect
import glob
import logging
import os
import re

_logger = logging.getLogger(__name__)


def _pattern_regex(pattern: str) -> re.Pattern:
    """Translate a glob pattern into a regex with one capture group per wildcard."""
    parts = re.split(r'(\*\*/|\*|\?)', pattern)
    wildcards = {'**/': '(.*/)?', '*': '([^/]*)', '?': '([^/])'}
    return re.compile(''.join(wildcards.get(part, re.escape(part)) for part in parts) + '$')


def match_glob(root: str, pattern: str) -> dict:
    """Return ``{key: path}`` of the files under ``root`` matching ``pattern``.

    Args:
        root: Folder the pattern is relative to.
        pattern: Glob with ``*``, ``**/`` and ``?``.

    Returns:
        Mapping of the tuple of wildcard captures to the file path.
    """
    regex = _pattern_regex(pattern)
    found = {}
    for path in glob.glob(os.path.join(glob.escape(root), pattern), recursive=True):
        if not os.path.isfile(path):
            continue
        relative = os.path.relpath(path, root).replace(os.sep, '/')
        match = regex.match(relative)
        if match:
            found[tuple(group or '' for group in match.groups())] = path
    return found


def pair_globs(root: str, rgb_glob: str, depth_glob: str, extra_globs=None,
               strict: bool = False) -> list:
    """Pair colour and depth files (and optional extras) by their wildcard captures.

    Args:
        root: Folder the patterns are relative to.
        rgb_glob: Colour image pattern.
        depth_glob: Depth image pattern with the same wildcards.
        extra_globs: Optional role -> pattern (``pose``, ``label``, ``meta``); a frame
            without one of its extras is left out.
        strict: Raise instead of leaving out a file that lacks one of its partners.

    Returns:
        Sorted list of ``(key, rgb_path, depth_path, {role: path})``.

    Raises:
        ValueError: With ``strict``, naming the first file without a partner and the
            pattern that found none.
    """
    rgb = match_glob(root, rgb_glob)
    depth = match_glob(root, depth_glob)
    extras = {role: match_glob(root, pattern) for role, pattern in (extra_globs or {}).items()}
    if strict:
        require_partners(root, {'colour': (rgb_glob, rgb), 'depth': (depth_glob, depth),
                                **{role: (extra_globs[role], found)
                                   for role, found in extras.items()}})
    keys = sorted(set(rgb) & set(depth))
    complete = [key for key in keys if all(key in found for found in extras.values())]
    unpaired = len(rgb) + len(depth) - 2 * len(keys)
    if unpaired or len(complete) < len(keys):
        _logger.info('%s: %d colour/depth files without a partner, %d frames without all of '
                     '%s', root, unpaired, len(keys) - len(complete), sorted(extras))
    return [(key, rgb[key], depth[key], {role: found[key] for role, found in extras.items()})
            for key in complete]


def require_partners(root: str, found: dict) -> None:
    """Raise unless every role's files have a partner with the same key in every other role.

    Args:
        root: The folder (for the message).
        found: Role -> ``(pattern, {key: path})``.

    Raises:
        ValueError: Naming the first file without a partner, the role and pattern lacking it.
    """
    for role, (_, files) in found.items():
        for key, path in sorted(files.items()):
            for other, (pattern, partners) in found.items():
                if other != role and key not in partners:
                    raise ValueError(f'{path} has no {other} partner under {root!r} (pattern '
                                     f'{pattern!r}, {len(partners)} {other} files found)')


def associate_nearest(times: list, reference_times: list, max_dt: float) -> list:
    """Pair each time with the nearest reference time within ``max_dt``.

    Args:
        times: Query times (e.g. depth stamps), any order.
        reference_times: Candidate times (e.g. colour stamps), any order.
        max_dt: Largest accepted ``|t - t_ref|`` (same unit as the times).

    Returns:
        List of ``(query_index, reference_index)``, one per query that has a partner.
    """
    order = sorted(range(len(reference_times)), key=reference_times.__getitem__)
    ordered = [reference_times[i] for i in order]
    pairs = []
    for index, time in enumerate(times):
        position = bisect.bisect_left(ordered, time)
        candidates = [c for c in (position - 1, position) if 0 <= c < len(ordered)]
        if not candidates:
            continue
        best = min(candidates, key=lambda c: abs(ordered[c] - time))
        if abs(ordered[best] - time) <= max_dt:
            pairs.append((index, order[best]))
    return pairs
