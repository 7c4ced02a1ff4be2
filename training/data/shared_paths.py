"""Where ``../shared`` is, and data paths the way reports print them.

Reports, logs and model provenance name data by its path relative to the shared folder (e.g.
``data/ycbv/frames/0002``), never by an absolute path of the machine that wrote them.
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shared_dir() -> str:
    """Return the shared folder: ``$VD_ROS_SHARED``, else ``../shared`` beside the repository."""
    return os.path.abspath(os.environ.get('VD_ROS_SHARED',
                                          os.path.join(REPO_ROOT, '..', 'shared')))


def resolve_data_root(path: str) -> str:
    """Resolve a data folder (e.g. ``data.base_dir``) against the repository root if relative."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(REPO_ROOT, path))


def report_path(path: str) -> str:
    """Return ``path`` as reports print it.

    Relative to the shared folder when inside it, else relative to the repository when inside
    it, else unchanged. Symbolic links are resolved first.
    """
    real = os.path.realpath(path)
    for base in (shared_dir(), REPO_ROOT):
        relative = os.path.relpath(real, os.path.realpath(base))
        if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
            return relative.replace(os.sep, '/')
    return path
