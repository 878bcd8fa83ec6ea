"""Reading prediction and truth masks from NIfTI files for ``mslesion evaluate``.

Files are read with the serving engine's NIfTI loader
(:func:`mslesion.services.imaging.nifti.load_volume`) and checked with its same-grid rule,
so evaluation accepts exactly the masks the node reads and writes; the maths is in
:mod:`mslesion.devtools.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from mslesion.devtools.metrics import CaseMetrics, EvaluationSummary, evaluate_case, summarise
from mslesion.services.errors import InputError
from mslesion.services.imaging.nifti import Volume, check_same_grid, load_volume

_NIFTI_SUFFIXES: Final = (".nii.gz", ".nii")


def evaluate_files(
    pairs: Sequence[tuple[Path, Path]], case_names: Sequence[str] | None = None
) -> EvaluationSummary:
    """Evaluate NIfTI prediction masks against NIfTI truth masks.

    Args:
        pairs: ``(prediction, truth)`` file pairs, one per case.
        case_names: names of the cases, one per pair; by default the shortest trailing part
            of the truth paths (NIfTI suffix dropped) that tells the cases apart, e.g.
            ``patient07/lesion_mask``.

    Returns:
        The summary of all cases, in input order.

    Raises:
        InputError: when there are no pairs, a file cannot be read or is not a 3-D image,
            or a prediction and its truth differ in shape or affine (beyond
            :data:`mslesion.services.imaging.nifti.AFFINE_ATOL` mm); the message names
            both files.
    """
    if not pairs:
        raise InputError("no (prediction, truth) file pairs to evaluate")
    pair_list = [(Path(pred), Path(truth)) for pred, truth in pairs]
    if case_names is None:
        names = _default_case_names([truth for _, truth in pair_list])
    else:
        names = list(case_names)
        if len(names) != len(pair_list):
            raise InputError(
                f"got {len(names)} case names for {len(pair_list)} file pairs: {names}"
            )
    results: list[CaseMetrics] = []
    for (pred_path, truth_path), name in zip(pair_list, names, strict=True):
        truth = _load_mask(truth_path)
        pred = _load_mask(pred_path)
        # The serving engine's rule for "one grid": same shape, affines within AFFINE_ATOL mm.
        check_same_grid({f"truth {truth_path}": truth, f"prediction {pred_path}": pred})
        results.append(evaluate_case(pred.data > 0, truth.data > 0, truth.voxel_volume_ml, name))
    return summarise(results)


def _load_mask(path: Path) -> Volume:
    """Read a 3-D NIfTI mask with the serving engine's loader (3-D, or 4-D with one volume).

    float64 keeps every stored value's sign, so ``> 0`` binarises exactly as on the file.
    """
    return load_volume(path, dtype=np.float64)


def _strip_nifti_suffix(name: str) -> str:
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _default_case_names(paths: Sequence[Path]) -> list[str]:
    """Shortest trailing path parts that make every name unique (suffix-stripped)."""
    parts = [(*p.parts[:-1], _strip_nifti_suffix(p.name)) for p in paths]
    depth = max(len(p) for p in parts)
    for keep in range(1, depth + 1):
        names = ["/".join(p[-keep:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    # The same file listed twice: number the duplicates rather than fail.
    names = ["/".join(p) for p in parts]
    return [f"{name}#{index}" for index, name in enumerate(names, start=1)]
