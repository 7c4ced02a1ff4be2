"""Where ``../shared`` is, and data paths the way reports print them.

Reports, logs and model provenance name data by its path relative to the shared folder (e.g.
``data/ycbv/frames/0002``), never by an absolute path of the machine that wrote them.
"""

import json
import os
import shlex
from typing import Any, Dict, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shared_dir() -> str:
    """Return the shared folder: ``$VD_ROS_SHARED``, else ``../shared`` beside the repository."""
    return os.path.abspath(os.environ.get('VD_ROS_SHARED',
                                          os.path.join(REPO_ROOT, '..', 'shared')))


def resolve_data_root(path: str) -> str:
    """Resolve a data folder (e.g. ``data.base_dir``) against the repository root if relative."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(REPO_ROOT, path))


def _relative_inside(path: str, base: str) -> Optional[str]:
    """Return ``path`` relative to ``base`` ('/' separated) when inside it, else None."""
    relative = os.path.relpath(os.path.realpath(path), os.path.realpath(base))
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return relative.replace(os.sep, '/')


def report_path(path: str) -> str:
    """Return ``path`` as reports print it.

    Relative to the shared folder when inside it, else relative to the repository when inside
    it, else unchanged. Symbolic links are resolved first.
    """
    for base in (shared_dir(), REPO_ROOT):
        relative = _relative_inside(path, base)
        if relative is not None:
            return relative
    return path


def command_text(program: str, argv: List[str]) -> str:
    """Return a command line for reports, to be run from the repository root.

    Arguments naming existing paths inside the shared folder become ``../shared/...``, those
    inside the repository become relative to it; the rest is kept as typed.
    """
    def portable(arg: str) -> str:
        if not os.path.exists(arg):
            return arg
        shared = _relative_inside(arg, shared_dir())
        if shared is not None:
            return f'../shared/{shared}'
        return _relative_inside(arg, REPO_ROOT) or arg

    return ' '.join([program] + [shlex.quote(portable(arg)) for arg in argv])


def source_text(spec: Dict[str, Any], base_dir: str) -> str:
    """Describe a source for reports: its root relative to ../shared and its frame ranges."""
    ranges = ''.join(f' {key} {json.dumps(spec[key])}' for key in ('select', 'exclude')
                     if spec.get(key) is not None)
    return report_path(os.path.join(base_dir, spec['root'])) + ranges
