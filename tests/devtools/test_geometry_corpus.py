"""The geometry corpus itself: each case is the geometry it claims, and keeps the lesions.

Read back through the product's DICOM reader (headers, then the FLAIR volume), every case
must have the orientation, spacing and shear it was generated with, and its truth (the
consensus lesion mask re-sliced like the FLAIR) must keep the reference's lesion volume.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.devtools.geometry_corpus import CASES, case
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.reader import read_study
from mslesion.services.dicom.selection import select_series
from mslesion.services.imaging.geometry import (
    affine_of,
    nearest_patient_axes,
    physical_corners,
)
from tests.geometry_corpus import LazyCorpus

ISO_RESLICED = [c.name for c in CASES if c.source == "iso" and c.flair and not c.refusal]

# (case, orientation code of the loaded FLAIR's (frame, row, column) axes, spacing mm)
EXPECTED_GEOMETRY = [
    ("reference", "IAL", (1.0, 1.0, 1.0)),
    ("sagittal_3d", "RIP", (1.0, 1.0, 1.0)),
    ("tilt_lr_20", "SPL", (1.0, 1.0, 1.0)),
    ("tilt_ap_12_flipped", "IPR", (1.0, 1.0, 0.8)),
    ("sheared_20", "SPL", (1.0 / math.cos(math.radians(20)), 1.0, 1.0)),
    ("thick_tilt_16", "SPL", (3.0, 0.9, 0.9)),
    ("clinical_tilt_16", "SPL", (3.0, 0.72, 0.72)),
]


@pytest.mark.parametrize(("name", "code", "spacing"), EXPECTED_GEOMETRY)
def test_each_case_reads_back_as_the_geometry_it_claims(
    geometry_corpus: LazyCorpus, name: str, code: str, spacing: tuple[float, float, float]
) -> None:
    written = geometry_corpus.study(name)
    selection = select_series(read_study(written.folder), required=("flair", "t1"))
    flair = selection.load("flair").image
    affine = affine_of(flair)
    assert nearest_patient_axes(affine).code() == code
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), spacing, atol=1e-3)
    acquisition = written.case.flair
    if acquisition is not None:
        _, _, normal = acquisition.in_plane_axes()
        normal_of_frames = np.cross(affine[:3, 2], affine[:3, 1])  # column x row: ± normal
        cosine = abs(normal_of_frames @ normal) / np.linalg.norm(normal_of_frames)
        assert cosine == pytest.approx(1.0, abs=1e-4)  # tilted exactly as prescribed
        along = min(1.0, abs(affine[:3, 0] @ normal) / spacing[0])
        lean = math.degrees(math.acos(along))
        assert lean == pytest.approx(acquisition.shear_deg, abs=0.05)  # DS rounding
    if written.truth is not None:  # the truth's voxels are the FLAIR's (in any index order)
        truth = affine_of(written.truth)
        corners = physical_corners(affine, sitk.GetArrayViewFromImage(flair).shape)
        truth_corners = physical_corners(truth, sitk.GetArrayViewFromImage(written.truth).shape)
        gaps = np.linalg.norm(corners[:, None] - truth_corners[None], axis=2).min(axis=1)
        assert gaps.max() < 1e-3


@pytest.mark.parametrize("name", ISO_RESLICED)
def test_the_resliced_truth_keeps_the_lesion_volume(geometry_corpus: LazyCorpus, name: str) -> None:
    reference = geometry_corpus.study("reference").truth_ml
    truth = geometry_corpus.study(name).truth_ml
    assert reference is not None and truth is not None
    thin = case(name).flair is not None and case(name).flair.is_3d()  # type: ignore[union-attr]
    assert truth == pytest.approx(reference, rel=0.03 if thin else 0.10)


def test_the_sheared_45_case_is_refused_at_selection(geometry_corpus: LazyCorpus) -> None:
    written = geometry_corpus.study("sheared_45")
    assert written.case.refusal is not None
    with pytest.raises(DicomInputError, match=written.case.refusal):
        select_series(read_study(written.folder), required=("flair",))


def test_unknown_case_names_list_the_known_ones() -> None:
    with pytest.raises(KeyError, match="tilt_lr_20"):
        case("no_such_case")
