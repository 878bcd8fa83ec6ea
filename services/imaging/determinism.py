"""Same scan in, same lesions out: ITK runs single-threaded in the analysis.

Multi-threaded ITK filters (the registration metric, N4's B-spline fit, ...) sum partial
results in an order that varies between runs. On open-ms patient01 that moved a lesion
probability by up to 0.34 and the lesion load by 0.3 % between two runs of the same study,
enough to flip a small lesion's follow-up category. With one ITK thread two runs agree to
the last bit. It costs time: preprocessing a FLAIR+T1+T2 study took 20.7 s on one ITK thread
against 13.7 s on two (2-core VM, measured side by side, 2026-12-06; docs/BENCHMARKS.md).
"""

from __future__ import annotations

import SimpleITK as sitk


def single_threaded_itk() -> None:
    """Make every later ITK filter of this process use one thread (idempotent)."""
    if sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() != 1:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
