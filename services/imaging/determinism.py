"""Same scan in, same lesions out: the ITK stages whose result depends on threads run on one.

ITK's Mattes mutual-information metric sums per-thread partial results in an order that
varies between runs. With several threads the registration transforms of open-ms patient01
differed on every run; through them, a lesion probability moved by up to 0.34 and the lesion
load by 0.3 % between two runs of the same study, enough to flip a small lesion's follow-up
category. Registration therefore runs on one thread (:func:`one_itk_thread`), and two runs
agree to the last bit. The other stages (resampling, N4, morphology) give the same bits on any
number of threads and keep them all: preprocessing a FLAIR+T1+T2 study takes about 10 s on
the 2-core VM against 13-14 s with every stage on one thread (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import SimpleITK as sitk

P = ParamSpec("P")
R = TypeVar("R")
# ITK's thread count is process-wide: two blocks in two threads must not restore each other's.
# (Workers run one analysis at a time; this keeps a second caller from racing the first.)
_LOCK = threading.RLock()


@contextmanager
def one_itk_thread() -> Iterator[None]:
    """ITK filters and registrations created inside the block use one thread."""
    with _LOCK:
        previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        try:
            yield
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def single_threaded(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator: ``function`` runs inside :func:`one_itk_thread`."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with one_itk_thread():
            return function(*args, **kwargs)

    return wrapper
