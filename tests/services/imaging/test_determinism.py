"""Registration gives the same transform whatever ITK's thread count; the rest keeps threads.

With several threads ITK's Mattes MI metric sums partial results in a varying order: the
FLAIR-to-T1 transform of open-ms patient01 differed between runs. Registration therefore
runs on one thread, so the transform cannot depend on the machine's cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.services.imaging import registration
from mslesion.services.imaging.determinism import one_itk_thread
from mslesion.services.imaging.preprocess import read_nifti_as_sitk


@pytest.fixture
def two_threads() -> object:
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    yield
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def test_one_itk_thread_restores_the_default(two_threads: object) -> None:
    with one_itk_thread():
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 2


def test_one_itk_thread_restores_the_default_after_an_error(two_threads: object) -> None:
    with pytest.raises(ValueError), one_itk_thread():
        raise ValueError("registration failed")
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 2


@pytest.mark.shared_data
def test_registration_does_not_depend_on_the_thread_count(
    shared_data: Path, two_threads: object
) -> None:
    folder = shared_data / "open-ms" / "longitudinal" / "patient01"
    flair = read_nifti_as_sitk(folder / "study1_FLAIR.nii.gz")
    t1 = read_nifti_as_sitk(folder / "study1_T1W.nii.gz")
    runs = [registration.rigid_to_flair(flair, t1, "T1").GetParameters() for _ in range(3)]
    with one_itk_thread():
        runs.append(registration.rigid_to_flair(flair, t1, "T1").GetParameters())
    assert all(np.array_equal(runs[0], other) for other in runs[1:])


def test_one_itk_thread_nests(two_threads: object) -> None:
    with one_itk_thread():
        with one_itk_thread():
            assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 2
