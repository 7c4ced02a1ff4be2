"""A user's class-list file: class names by label id, optionally with their display colours.

Format: one class per line, in label-id order (line 1 = id 0 = background/unlabelled); blank
lines and lines starting with ``#`` are skipped and take no id. A line is a name, optionally
followed by its colour as three integers 0..255 (RGB), separated by spaces, tabs or commas::

    background      0 0 0
    mug             255 0 0
    power drill     0,128,255
    bowl

A name may contain spaces (the colour is the last three fields when they are integers). When
some lines give a colour, the others get the node's default palette colour for their id
(``vd_ros.core.postprocess.label_palette``), so every class has one; when none does, the file
has no colours and the node keeps its palette.
"""

import dataclasses
import re
from typing import Optional, Tuple

from vd_ros.core.postprocess import label_palette

_COLOUR_TAIL = re.compile(r'^(?P<name>.*?)[\s,]+(?P<r>-?\d+)[\s,]+(?P<g>-?\d+)[\s,]+(?P<b>-?\d+)$')


@dataclasses.dataclass(frozen=True)
class ClassList:
    """Class names by label id and their colours.

    Attributes:
        names: Class names, id 0 first.
        colors: One ``(r, g, b)`` per class, or None when the file gives no colour.
        source: The file it was read from (for messages).
    """

    names: Tuple[str, ...]
    colors: Optional[Tuple[Tuple[int, int, int], ...]] = None
    source: str = '<classes>'


def parse_class_list(text: str, source: str = '<classes>') -> ClassList:
    """Parse the text of a class-list file (module docstring).

    Args:
        text: The file's contents.
        source: File name used in error messages.

    Returns:
        The class list.

    Raises:
        ValueError: Fewer than two classes, a colour value outside 0..255, an empty or
            duplicate name; naming the file and line.
    """
    names, given = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        match = _COLOUR_TAIL.match(line)
        name = (match.group('name') if match else line).strip().strip(',').strip()
        if not name:
            raise ValueError(f'{source}:{number}: empty class name in {line!r}')
        if name in names:
            raise ValueError(f'{source}:{number}: class {name!r} listed twice (ids '
                             f'{names.index(name)} and {len(names)})')
        if match:
            colour = tuple(int(match.group(key)) for key in 'rgb')
            if not all(0 <= value <= 255 for value in colour):
                raise ValueError(f'{source}:{number}: colour {list(colour)} of {name!r} must be '
                                 'three integers 0..255')
            given[len(names)] = colour
        names.append(name)
    if len(names) < 2:
        raise ValueError(f'{source}: a class list needs background (id 0) and at least one '
                         f'class, found {len(names)} name(s)')
    colors = None
    if given:
        palette = label_palette(len(names))
        colors = tuple(given.get(i, tuple(int(v) for v in palette[i])) for i in range(len(names)))
    return ClassList(tuple(names), colors, source)


def read_class_list(path: str) -> ClassList:
    """Read a class-list file (module docstring).

    Raises:
        FileNotFoundError: Missing file.
        ValueError: See :func:`parse_class_list`.
    """
    with open(path, encoding='utf-8') as stream:
        return parse_class_list(stream.read(), path)
