"""Multi-instance inputs: a 5,000-slice series and requests that mix patients."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from tests.corpus.base import mr_dataset, new_uid, part10

LARGE_SERIES_SLICES = 5000
_SLOT = "99999"


def write_large_series(folder: Path, n_slices: int = LARGE_SERIES_SLICES) -> list[Path]:
    """Write one MR series of ``n_slices`` 8x8 slices, 1 mm apart, one file per slice.

    Instance numbers and z positions (mm) run from 10,001, so every one has five digits.

    The slices form a valid regular stack, so only its size is unusual.
    """
    if not 0 < n_slices <= 89_999:
        raise ValueError("n_slices must be 1 to 89,999 (five-digit numbers from 10,001)")
    folder.mkdir(parents=True, exist_ok=True)
    # Encode once with a fixed-width placeholder in the SOP Instance UID (twice: meta and
    # dataset), InstanceNumber and the z of ImagePositionPatient, then patch the bytes:
    # 5,000 pydicom writes would take several seconds, byte patching a fraction of one.
    ds = mr_dataset(series_uid=new_uid(2), sop_uid=f"{new_uid(3)}.{_SLOT}")
    ds.InstanceNumber = _SLOT
    ds.ImagePositionPatient = ["0", "0", _SLOT]
    template = part10(ds)
    if template.count(_SLOT.encode()) != 4:
        raise AssertionError("placeholder not unique in the template")
    paths: list[Path] = []
    for i in range(n_slices):
        path = folder / f"IM{i:05d}.dcm"
        path.write_bytes(template.replace(_SLOT.encode(), str(10_001 + i).encode()))
        paths.append(path)
    return paths


def several_patients(instances_each: int = 2) -> list[Dataset]:
    """Instances of two patients (two PatientIDs, two studies): one STOW request may hold both."""
    out: list[Dataset] = []
    for patient in ("CORPUS-A", "CORPUS-B"):
        study, series = new_uid(1), new_uid(2)
        out += [
            mr_dataset(
                study_uid=study,
                series_uid=series,
                patient_id=patient,
                instance_number=i + 1,
                position_z=float(i),
            )
            for i in range(instances_each)
        ]
    return out


def one_study_two_patients() -> list[Dataset]:
    """Two instances sharing a StudyInstanceUID but naming different patients.

    A study belongs to one patient; the second instance contradicts the first.
    """
    study, series = new_uid(1), new_uid(2)
    return [
        mr_dataset(study_uid=study, series_uid=series, patient_id="CORPUS-A", instance_number=1),
        mr_dataset(
            study_uid=study,
            series_uid=series,
            patient_id="CORPUS-B",
            instance_number=2,
            position_z=1.0,
        ),
    ]
