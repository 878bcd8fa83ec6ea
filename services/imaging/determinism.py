"""Same scan in, same lesions out: ITK runs single-threaded in the analysis.

Multi-threaded ITK filters (the registration metric, N4's B-spline fit, ...) sum partial
results in an order that varies between runs. On open-ms patient01 that moved a lesion
probability by up to 0.34 and the lesion load by 0.3 % between two runs of the same study,
enough to flip a small lesion's follow-up category. With one ITK thread two runs agree to
the last bit; the whole study took the same time on 2 cores (12.7/11.0 s vs 13.5/11.0 s,
measured side by side): ONNX Runtime, with its own threads, does the heavy work.
"""

from __future__ import annotations

import SimpleITK as sitk


def single_threaded_itk() -> None:
    """Make every later ITK filter of this process use one thread (idempotent)."""
    if sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() != 1:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
