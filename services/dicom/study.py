"""What reading a study yields: the study, its series and their assembled volumes.

:class:`Study`, its :class:`Series` (headers only), and a :class:`SeriesVolume` with the
:class:`SourceFrame` behind each of its slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk
from pydicom.dataset import Dataset

from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.sources import SourceFile


@dataclass(frozen=True)
class SourceFrame:
    """One slice of an assembled volume: the DICOM image (and frame) it came from."""

    sop_instance_uid: str
    sop_class_uid: str
    frame_number: int | None  # 1-based frame of a multi-frame instance; None if single-frame
    source: SourceFile


@dataclass(frozen=True)
class Series:
    """Header summary of one series (attributes of its first instance, by InstanceNumber).

    ``headers`` are pydicom datasets read without pixel data, one per file, in the order of
    ``files``. For Enhanced MR the acquisition attributes come from the functional groups.
    """

    series_uid: str
    description: str = ""
    modality: str = ""
    sop_class_uid: str = ""
    series_number: int | None = None
    n_instances: int = 0
    n_frames: int = 0
    protocol_name: str = ""
    sequence_name: str = ""
    scanning_sequence: tuple[str, ...] = ()
    sequence_variant: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()
    image_type: tuple[str, ...] = ()
    inversion_time: float | None = None
    repetition_time: float | None = None
    echo_time: float | None = None
    echo_times: tuple[float, ...] = ()  # distinct TEs: several for a multi-echo series
    mr_acquisition_type: str = ""
    slice_thickness: float | None = None
    pixel_spacing: tuple[float, float] | None = None
    contrast_agent: str = ""
    sop_class_uids: tuple[str, ...] = ()
    transfer_syntaxes: tuple[str, ...] = ()
    files: tuple[SourceFile, ...] = ()
    headers: tuple[Dataset, ...] = field(default=(), repr=False, compare=False)

    @property
    def is_3d(self) -> bool:
        """True for a 3D (volume) acquisition, per MRAcquisitionType."""
        return self.mr_acquisition_type.upper() == "3D"

    def error(self, problem: str) -> DicomInputError:
        """A :class:`DicomInputError` about this series."""
        return DicomInputError(
            problem,
            series_uid=self.series_uid,
            series_description=self.description,
            series_number=self.series_number,
        )


@dataclass(frozen=True)
class Study:
    """All series of one DICOM study, headers only; ``skipped`` lists the non-DICOM files.

    ``skipped`` holds file names, which some exports build from patient names: keep it out of
    shared logs.
    """

    study_uid: str
    patient_id: str
    study_date: str
    series: list[Series]
    skipped: list[str]
    source: Path

    def find(self, series_uid: str) -> Series:
        """The series with this SeriesInstanceUID; ``KeyError`` if the study has none."""
        for series in self.series:
            if series.series_uid == series_uid:
                return series
        raise KeyError(series_uid)


@dataclass(frozen=True)
class SeriesVolume:
    """One series assembled into a 3D volume, with the source of each slice in z order.

    ``frames[k]`` and ``headers[k]`` describe slice ``k`` of ``image`` (z index); a multi-frame
    instance's header appears once per frame it contributes.
    """

    series: Series
    image: sitk.Image
    frames: list[SourceFrame]
    headers: list[Dataset]
