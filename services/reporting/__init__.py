"""Results as PACS expects them: DICOM SEG and SR, a JSON study report and a PNG montage.

Every output states that it is for research use only and unverified.
"""

from mslesion.services.reporting.json_report import (
    StudyReport,
    build_study_report,
    read_json_report,
    series_used,
    write_json_report,
)
from mslesion.services.reporting.montage import montage_title, render_montage
from mslesion.services.reporting.seg import build_seg, check_lesion_coordinates, patient_affine
from mslesion.services.reporting.sr import build_sr

__all__ = [
    "StudyReport",
    "build_seg",
    "build_sr",
    "build_study_report",
    "check_lesion_coordinates",
    "montage_title",
    "patient_affine",
    "read_json_report",
    "render_montage",
    "series_used",
    "write_json_report",
]
