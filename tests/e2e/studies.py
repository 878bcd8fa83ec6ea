"""Real-anatomy DICOM studies for the end-to-end tests, with patient data the logs must not show.

The open-ms longitudinal patient01 has two time points (study1, study2) of FLAIR, T1W and T2W.
The patient attributes written into them are unusual strings, so that finding any of them in
a log line is certain to be a leak and not a coincidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom

from mslesion.devtools.dicom_writer import StudyInfo, write_study

PATIENT = "longitudinal/patient01"
ROLES = ("FLAIR", "T1W", "T2W")


@dataclass(frozen=True)
class Phi:
    """The identifying attributes written into a test study."""

    patient_name: str = "QUORVANE^ELSPETH^T"
    patient_id: str = "MSE2E-74193"
    birth_date: str = "19710923"
    accession: str = "ACC-E2E-55102"

    def needles(self) -> list[str]:
        """Strings that must not appear in any log line: each value and its parts."""
        family, given, _ = self.patient_name.split("^")
        iso_birth = f"{self.birth_date[:4]}-{self.birth_date[4:6]}-{self.birth_date[6:]}"
        return [self.patient_id, family, given, self.birth_date, iso_birth, self.accession]


def write_time_point(
    shared_data: Path, time_point: int, out_dir: Path, phi: Phi, study_date: str
) -> StudyInfo:
    """Write study ``time_point`` (1 or 2) of patient01 as a DICOM study into ``out_dir``."""
    src = shared_data / "open-ms" / PATIENT
    info = StudyInfo(
        patient_id=phi.patient_id,
        patient_name=phi.patient_name,
        patient_birth_date=phi.birth_date,
        patient_sex="F",
        accession_number=phi.accession,
        study_date=study_date,
        study_description="MR BRAIN MS FOLLOW-UP",
    )
    write_study({role: src / f"study{time_point}_{role}.nii.gz" for role in ROLES}, out_dir, info)
    return info


def read_study(folder: Path) -> list[pydicom.Dataset]:
    """Every DICOM file under ``folder``, read whole."""
    return [pydicom.dcmread(path) for path in sorted(folder.rglob("*.dcm"))]
