"""Judging an adapted completion head against the head it started from.

Rows are ``training.engine.completion_val.validate`` results: per input pattern (``'150 pts'``,
``'perlin 50%'``...) the RMSE in mm of the head, its base, the push-pull fill and the linear
fill, on the same frames and inputs.
"""

from typing import Dict, List

Row = Dict[str, float]


def pattern_names(row: Row) -> List[str]:
    """Return the input patterns a row scores, in its order."""
    return [key[:-len(' head')] for key in row if key.endswith(' head')]


def head_rmse_text(row: Row) -> str:
    """Return the head's RMSE per pattern as one line, e.g. '150 pts 180.4 mm, ...'."""
    return ', '.join(f'{name} {row[f"{name} head"]:.1f} mm' for name in pattern_names(row))


def worse_patterns(adapted: Row, reference: Row) -> List[str]:
    """Return the patterns where ``adapted``'s head has a higher RMSE than ``reference``'s."""
    return [name for name in pattern_names(reference)
            if adapted[f'{name} head'] > reference[f'{name} head']]


def mean_ratio(adapted: Row, reference: Row) -> float:
    """Mean over patterns of adapted head RMSE / reference head RMSE (< 1 is better)."""
    names = pattern_names(reference)
    return sum(adapted[f'{n} head'] / reference[f'{n} head'] for n in names) / len(names)


def comparison_lines(title: str, reference: Row, adapted: Row) -> List[str]:
    """Markdown table lines: per pattern, linear fill, input and adapted head, both vs fill."""
    lines = [f'{title}', '',
             '| input | linear fill [mm] | input model [mm] | adapted [mm] | input vs fill | '
             'adapted vs fill |', '|---|---:|---:|---:|---:|---:|']
    for name in pattern_names(reference):
        fill = reference[f'{name} linear fill']
        before, after = reference[f'{name} head'], adapted[f'{name} head']
        lines.append(f'| {name} | {fill:.1f} | {before:.1f} | {after:.1f} | '
                     f'{100 * (before / fill - 1):+.0f} % | {100 * (after / fill - 1):+.0f} % |')
    return lines
