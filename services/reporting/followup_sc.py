"""The follow-up's visual report as DICOM Secondary Capture, for PACS that show only images.

One series in the current study, one RGB instance per page of
:func:`services.reporting.followup_montage.followup_pages`: page 1 the montage (now versus
prior), page 2 the counts, activity, dates, disclaimer and lesion-load timeline. The SEG and
SR are the reference; these pages are what any viewer can display.

Header choices:

* Patient Orientation: page 1 shows radiological axial slices, so rows run to the patient's
  left and columns to posterior ("L", "P"); page 2 is a chart, so the (type 2) attribute is
  left empty rather than claim an orientation.
* Burned In Annotation "NO": the pages carry study dates and numbers but no name or ID.
* Conversion Type "WSD" (workstation): the pages are rendered by this software, not captured
  from a video or film digitiser.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.followup.analysis import FollowUpAnalysis
from mslesion.services.reporting.followup_montage import followup_pages
from mslesion.services.reporting.history_chart import ChartPoint
from mslesion.services.reporting.identity import (
    FOLLOWUP_SC_SERIES_NUMBER,
    new_uid,
    repair_long_code_values,
    software_versions,
    with_study_defaults,
)

FOLLOWUP_SC_SERIES_DESCRIPTION = "MS lesion change report (research use, unverified)"
MONTAGE_ORIENTATION = ("L", "P")  # radiological axial: rows to the left, columns to posterior


def build_followup_sc(
    current_sources: Sequence[Dataset],
    analysis: FollowUpAnalysis,
    history: Sequence[ChartPoint],
    settings: Settings,
    *,
    pages: Sequence[Image.Image] | None = None,
) -> list[Dataset]:
    """Render the follow-up pages and wrap each as a Secondary Capture of the current study.

    ``current_sources`` give the patient and study (the first one is used); ``history`` is the
    patient's lesion-load timeline (the two compared studies when empty). ``pages`` are the
    pages of :func:`services.reporting.followup_montage.followup_pages` when the caller has
    rendered them already (rendering takes about a second on a full-size FLAIR). The
    instances share one new series, numbered 1, 2, ... in page order; page 1 is the montage.

    Raises:
        InputError: when there are no source images or the analysis is inconsistent.
    """
    if not current_sources:
        raise InputError("no source images: a secondary capture belongs to the current study")
    reference = with_study_defaults(current_sources[0])
    model = (analysis.report.model_name, analysis.report.model_version)
    series_uid = new_uid(settings)
    if pages is None:
        pages = followup_pages(analysis, history)
    instances: list[Dataset] = []
    for number, page in enumerate(pages, start=1):
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=reference,
            pixel_array=_rgb(page),
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=series_uid,
            series_number=FOLLOWUP_SC_SERIES_NUMBER,
            sop_instance_uid=new_uid(settings),
            instance_number=number,
            manufacturer=settings.manufacturer,
            patient_orientation=MONTAGE_ORIENTATION,
            transfer_syntax_uid=ExplicitVRLittleEndian,
            series_description=FOLLOWUP_SC_SERIES_DESCRIPTION,
            manufacturer_model_name=settings.manufacturer_model_name,
            software_versions=software_versions(*model),
            device_serial_number=settings.device_serial_number,
            institution_name=settings.institution_name,
        )
        if number > 1:
            sc["PatientOrientation"].value = None  # a chart has no anatomy (type 2: empty)
        sc.BodyPartExamined = "BRAIN"  # unpaired: no Laterality (type 2C) is due
        sc.BurnedInAnnotation = "NO"
        sc.ConversionType = "WSD"
        repair_long_code_values(sc)
        instances.append(sc)
    return instances


def _rgb(page: Image.Image) -> np.ndarray:
    """A page as a contiguous uint8 (rows, columns, 3) array."""
    return np.ascontiguousarray(np.asarray(page.convert("RGB"), dtype=np.uint8))
