"""The lesion mask as a DICOM Segmentation (SEG) that PACS and viewers overlay on the FLAIR.

One BINARY segment, "MS lesion", on the FLAIR's own grid: frame ``i`` of the mask lies on
source frame ``i`` (a single-frame instance, or frame ``i`` of one multi-frame instance), so
the SEG needs no resampling and references its source frames one to one.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.coding import Code

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.imaging.geometry import (
    GAP_ATOL_MM,
    MAX_SHEAR_DEG,
    OFF_LINE_ATOL_MM,
    fit_slice_line,
    gap_tolerance,
    straight_step,
)
from mslesion.services.reporting.identity import (
    ALGORITHM_FAMILY,
    SEG_SERIES_NUMBER,
    algorithm_name,
    new_uid,
    repair_long_code_values,
    software_versions,
    with_study_defaults,
)
from mslesion.services.segmentation.postprocess import LesionReport

LESION_SEGMENT_NUMBER = 1
LESION_SEGMENT_LABEL = "MS lesion"
LESION_CATEGORY = Code("49755003", "SCT", "Morphologically abnormal structure")
LESION_TYPE = Code("52988006", "SCT", "Lesion")
BRAIN = Code("12738006", "SCT", "Brain")
SEG_SERIES_DESCRIPTION = "MS lesions (research use, unverified)"
SEG_CONTENT_LABEL = "MS_LESIONS"  # CS: upper case, at most 16 characters
LESION_DISPLAY_RGB = (255, 48, 48)  # red stands out on grey-scale FLAIR

_CENTROID_TOL_MM = 0.5
"""Far below a voxel and far above float rounding: a sign or axis mix-up is centimetres."""


def source_frame_count(source_images: Sequence[Dataset]) -> int:
    """Number of image frames in the source: instances, or frames of one multi-frame instance.

    Raises:
        InputError: when there are no images, several multi-frame instances, or instances
            of different series or matrix sizes.
    """
    if not source_images:
        raise InputError("no source images: a SEG must reference the FLAIR it was derived from")
    if len(source_images) == 1:
        return int(source_images[0].get("NumberOfFrames", 1) or 1)
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in source_images):
        raise InputError(
            f"{len(source_images)} source instances include multi-frame ones: give either "
            "single-frame instances or exactly one multi-frame instance"
        )
    series = {str(ds.SeriesInstanceUID) for ds in source_images}
    if len(series) != 1:
        raise InputError(f"source images come from {len(series)} series; expected one FLAIR series")
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in source_images}
    if len(sizes) != 1:
        raise InputError(f"source images have different matrix sizes {sorted(sizes)}")
    return len(source_images)


def check_mask(source_images: Sequence[Dataset], mask: np.ndarray) -> np.ndarray:
    """Return ``mask`` as uint8 0/1 after checking it has one frame per source frame.

    Raises:
        InputError: when the shape differs from (frames, rows, columns) of the source or the
            mask holds values other than 0 and 1.
    """
    frames = source_frame_count(source_images)
    expected = (frames, int(source_images[0].Rows), int(source_images[0].Columns))
    if mask.shape != expected:
        raise InputError(
            f"mask has shape {mask.shape} but the source images are (frames, rows, columns) "
            f"= {expected}: the mask must be on the native FLAIR grid, one frame per image"
        )
    values = np.unique(mask)
    if not np.isin(values, (0, 1)).all():
        raise InputError(f"mask must be binary 0/1, found values {values[:10].tolist()}")
    return mask.astype(np.uint8, copy=False)


def patient_affine(source_images: Sequence[Dataset]) -> np.ndarray:
    """4x4 map from mask index (frame, row, column) to DICOM patient coordinates (LPS, mm).

    Give it to :func:`services.segmentation.postprocess.describe_lesions` so that lesion
    centroids come out in the patient coordinates the SEG and SR use.

    The frame axis is the step between frames: the normal, or the lean of a sheared stack.

    Raises:
        InputError: when geometry is missing or the frames are not evenly spaced along one
            straight line (the mask would then not be a regular 3D grid).
    """
    positions, orientation, spacing = _frame_geometry(source_images)
    row_dir, col_dir = orientation[:3], orientation[3:]
    affine = np.eye(4)
    affine[:3, 1] = col_dir * spacing[0]  # moving down a row follows the column direction
    affine[:3, 2] = row_dir * spacing[1]
    affine[:3, 3] = positions[0]
    if len(positions) == 1:
        # One slice has no neighbour to measure the step: its thickness sets the voxel volume.
        affine[:3, 0] = np.cross(row_dir, col_dir) * _single_slice_thickness(source_images[0])
    else:
        affine[:3, 0] = _slice_step(positions, np.cross(row_dir, col_dir))
    return affine


def check_lesion_coordinates(source_images: Sequence[Dataset], lesion_report: LesionReport) -> None:
    """Refuse lesion centroids that are not DICOM patient (LPS) coordinates of these images.

    Each lesion's ``centroid_voxel`` (frame, row, column of the native mask) is mapped with
    :func:`patient_affine` and must land on its ``centroid_mm``. This catches the classic
    NIfTI mix-up (RAS: x and y negated), which would swap left and right in the report.

    Raises:
        InputError: naming the first lesion whose centroid disagrees.
    """
    if not lesion_report.lesions:
        return
    affine = patient_affine(source_images)
    for lesion in lesion_report.lesions:
        expected = affine[:3, :3] @ np.asarray(lesion.centroid_voxel) + affine[:3, 3]
        error = float(np.linalg.norm(expected - np.asarray(lesion.centroid_mm)))
        if error > _CENTROID_TOL_MM:
            raise InputError(
                f"lesion {lesion.label}: centroid {lesion.centroid_mm} mm is {error:.1f} mm from "
                f"where its voxel {lesion.centroid_voxel} lies in the FLAIR "
                f"({tuple(round(float(v), 2) for v in expected)} mm LPS): describe lesions on "
                "the native mask with patient_affine(source_images), not a NIfTI (RAS) affine"
            )


def _single_slice_thickness(image: Dataset) -> float:
    """Spacing between slices, else slice thickness, of a one-slice source (mm)."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = image.get(keyword)
        if value is not None and float(value) > 0:
            return float(value)
    raise InputError("a single source slice has neither SpacingBetweenSlices nor SliceThickness")


def _slice_step(positions: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Vector between consecutive frames; checks the frames form one regular stack.

    The rules and tolerances are the DICOM reader's (:mod:`services.imaging.geometry`), so
    a FLAIR that the reader assembled always passes here, sheared or not.
    """
    line = fit_slice_line(positions, normal)
    gaps = line.gaps
    nominal = float(np.median(gaps))
    if abs(nominal) < GAP_ATOL_MM:
        raise InputError("source frames share one position: not a 3D stack")
    if (np.sign(gaps) != np.sign(nominal)).any() or (
        np.abs(gaps - nominal).max() > gap_tolerance(nominal)
    ):
        raise InputError(
            "source frames are not evenly spaced in the given order "
            f"(gaps along the normal from {gaps.min():.3f} to {gaps.max():.3f} mm): sort them "
            "along the slice normal and give one regular stack"
        )
    if line.off_line_mm.max() > OFF_LINE_ATOL_MM or line.shear_deg > MAX_SHEAR_DEG:
        raise InputError(
            f"source frames are not one straight stack (a frame lies {line.off_line_mm.max():.3f}"
            f" mm off the line through the others; the line leans {line.shear_deg:.1f}° from "
            f"the normal, at most {MAX_SHEAR_DEG:g}°)"
        )
    return straight_step(line, normal)


def _frame_geometry(
    source_images: Sequence[Dataset],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (frames x 3), orientation (6) and pixel spacing (row, column) of the source."""
    try:
        if len(source_images) == 1 and int(source_images[0].get("NumberOfFrames", 1) or 1) > 1:
            return _multiframe_geometry(source_images[0])
        first = source_images[0]
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in source_images])
        orientation = np.array([float(v) for v in first.ImageOrientationPatient])
        spacing = np.array([float(v) for v in first.PixelSpacing])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(f"source images lack usable patient geometry: {exc}") from exc
    return positions, orientation, spacing


def _multiframe_geometry(image: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geometry of an enhanced multi-frame image from its functional groups."""
    shared = image.SharedFunctionalGroupsSequence[0]
    frames = image.PerFrameFunctionalGroupsSequence

    def item(frame: Dataset, keyword: str) -> Dataset:
        # A functional group sits either in the shared or in every per-frame item.
        return frame[keyword][0] if keyword in frame else shared[keyword][0]

    positions = np.array(
        [[float(v) for v in item(f, "PlanePositionSequence").ImagePositionPatient] for f in frames]
    )
    first = frames[0]
    orientation = np.array(
        [float(v) for v in item(first, "PlaneOrientationSequence").ImageOrientationPatient]
    )
    spacing = np.array([float(v) for v in item(first, "PixelMeasuresSequence").PixelSpacing])
    return positions, orientation, spacing


def lesion_segment_description(model_name: str, model_version: str) -> hd.seg.SegmentDescription:
    """The one segment: "MS lesion", found automatically by the named model."""
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name(model_name),
        family=ALGORITHM_FAMILY,
        version=model_version,
    )
    return hd.seg.SegmentDescription(
        segment_number=LESION_SEGMENT_NUMBER,
        segment_label=LESION_SEGMENT_LABEL,
        segmented_property_category=LESION_CATEGORY,
        segmented_property_type=LESION_TYPE,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=[BRAIN],
        display_color=hd.color.CIELabColor.from_rgb(*LESION_DISPLAY_RGB),
    )


def build_seg(
    source_images: Sequence[Dataset],
    mask: np.ndarray,
    model_name: str,
    model_version: str,
    settings: Settings,
) -> hd.seg.Segmentation:
    """Encode ``mask`` (frames, rows, columns; 0/1) as a BINARY DICOM SEG of the FLAIR series.

    ``source_images`` are the FLAIR's single-frame instances in the order of the mask's axis 0,
    or one enhanced multi-frame instance whose frames match that axis. Frames without lesion
    are omitted to keep the object small. An empty mask still gives a SEG (every frame kept,
    all zero): PACS then shows that the study was analysed and nothing was found, and the SR
    always has a segment to reference.

    Raises:
        InputError: when the images or the mask break the rules above.
    """
    pixels = check_mask(source_images, mask)
    patient_affine(source_images)  # refuse irregular stacks before encoding anything
    return encode_seg(
        source_images,
        pixels,
        [lesion_segment_description(model_name, model_version)],
        SEG_SERIES_NUMBER,
        SEG_CONTENT_LABEL,
        SEG_SERIES_DESCRIPTION,
        model_name,
        model_version,
        settings,
    )


def encode_seg(
    source_images: Sequence[Dataset],
    pixels: np.ndarray,
    segments: Sequence[hd.seg.SegmentDescription],
    series_number: int,
    content_label: str,
    description: str,
    model_name: str,
    model_version: str,
    settings: Settings,
) -> hd.seg.Segmentation:
    """A BINARY SEG of ``pixels`` (one frame per source frame) by this node's model.

    Shared by the single-study and the follow-up SEG: same equipment, empty frames omitted.
    """
    images = [with_study_defaults(source_images[0]), *source_images[1:]]
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=list(segments),
        series_instance_uid=new_uid(settings),
        series_number=series_number,
        sop_instance_uid=new_uid(settings),
        instance_number=1,
        manufacturer=settings.manufacturer,
        manufacturer_model_name=settings.manufacturer_model_name,
        software_versions=software_versions(model_name, model_version),
        device_serial_number=settings.device_serial_number,
        content_label=content_label,
        content_description=description,
        omit_empty_frames=True,
        series_description=description,
        institution_name=settings.institution_name,
    )
    repair_long_code_values(seg)
    return seg
