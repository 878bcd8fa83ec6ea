"""Plain-text table of evaluation metrics, as ``mslesion evaluate`` prints it.

Rendering only: the numbers come from :mod:`mslesion.devtools.metrics`.
"""

from __future__ import annotations

import math
from typing import Final

from mslesion.devtools.metrics import EvaluationSummary

_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    # (metric, header, format of a per-case value)
    ("dice", "Dice", ".3f"),
    ("lesion_tpr", "LTPR", ".3f"),
    ("lesion_precision", "LPrec", ".3f"),
    ("lesion_f1", "LF1", ".3f"),
    ("n_truth_lesions", "nTruth", "d"),
    ("n_pred_lesions", "nPred", "d"),
    ("n_detected_lesions", "nDet", "d"),
    ("n_false_positive_lesions", "nFP", "d"),
    ("truth_volume_ml", "VTruth_ml", ".3f"),
    ("pred_volume_ml", "VPred_ml", ".3f"),
    ("abs_volume_difference_ml", "AVD_ml", ".3f"),
    ("abs_volume_difference_pct", "AVD_%", ".1f"),
)
_MEAN_ROW_NAME: Final = "MEAN"


def _format_value(value: float, spec: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if spec == "d" and isinstance(value, float):
        # Means of counts are fractional.
        return f"{value:.1f}"
    return format(value, spec)


def format_table(summary: EvaluationSummary) -> str:
    """Render a summary as a fixed-width plain-text table.

    One row per case, then a ``MEAN`` row (NaN-skipping means), then a line with the
    volume correlation. Undefined values print as ``n/a``.
    """
    header = ["case", *(title for _, title, _ in _COLUMNS)]
    rows: list[list[str]] = [
        [c.case, *(_format_value(getattr(c, name), spec) for name, _, spec in _COLUMNS)]
        for c in summary.cases
    ]
    rows.append(
        [
            _MEAN_ROW_NAME,
            *(_format_value(float(summary.mean[name]), spec) for name, _, spec in _COLUMNS),
        ]
    )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        # Case names left-aligned, numbers right-aligned so that decimals line up.
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "-" * len(render(["-" * w for w in widths]))
    lines = [render(header), rule, *(render(row) for row in rows[:-1]), rule, render(rows[-1])]
    if summary.volume_correlation is None:
        correlation = "n/a (needs at least 2 cases with varying volumes)"
    else:
        correlation = f"{summary.volume_correlation:.3f}"
    lines.append(f"Volume correlation (Pearson r, truth vs prediction): {correlation}")
    return "\n".join(lines)
