"""Read a DICOM MR study from a folder or a zip archive and assemble series into volumes.

Reading takes two passes so that memory stays bounded by one series, not by the study:
:func:`read_study` parses only the headers of every file (``stop_before_pixels``) and groups
them into series; :func:`load_series_volume` decodes the pixels of one (selected) series and
checks that its slices form a regular 3D grid.

Volumes are SimpleITK images in DICOM patient coordinates (LPS, as ITK uses): origin is the
first slice's ImagePositionPatient, axes are the row direction, the column direction and the
slice normal (row × column), so the z axis runs along increasing position on the normal.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from mslesion.services.dicom.errors import DicomInputError

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
# What PACS and highdicom produce when they convert classic single-frame MR to multi-frame.
LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.4"
SUPPORTED_SOP_CLASSES = (
    MR_IMAGE_STORAGE,
    ENHANCED_MR_IMAGE_STORAGE,
    LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE,
)
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR

# Uncompressed syntaxes are decoded by pydicom itself; others need a decoder plugin.
NATIVE_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2",  # Implicit VR Little Endian
        "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
        "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still found in archives)
    }
)

# Geometry tolerances. DICOM stores positions as decimal strings of at most 16 characters,
# so real series carry rounding noise of ~1e-4 mm; these bounds sit well above that and well
# below any real error (a moved or missing slice is at least ~0.5 mm off).
SPACING_RTOL = 0.01
SPACING_ATOL_MM = 0.01
ORIENTATION_ATOL = 1e-3
IN_PLANE_ATOL_MM = 0.05

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
DICM_OFFSET = 128


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on a zip archive, so a zip bomb is refused before it is decompressed."""

    max_members: int = 100_000
    max_total_bytes: int = 4 << 30
    max_member_bytes: int = 2 << 30


@dataclass(frozen=True)
class SourceFile:
    """Where one DICOM file lies: a file on disk, or a member of a zip archive."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member is not None else str(self.path)


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


# --------------------------------------------------------------------------- file access


class _Opener:
    """Opens source files, keeping each zip archive open once for all its members."""

    def __init__(self) -> None:
        self._archives: dict[Path, zipfile.ZipFile] = {}

    def open(self, source: SourceFile) -> IO[bytes]:
        if source.member is None:
            return source.path.open("rb")
        archive = self._archives.get(source.path)
        if archive is None:
            archive = zipfile.ZipFile(source.path)
            self._archives[source.path] = archive
        return archive.open(source.member)

    def __enter__(self) -> _Opener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for archive in self._archives.values():
            archive.close()


def _folder_sources(root: Path) -> Iterator[SourceFile]:
    # os.walk does not descend into symlinked folders, so a link cannot pull in files from
    # elsewhere on the node; sorting makes the reading order (and tie-breaks) reproducible.
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield SourceFile(Path(folder) / name)


def _unsafe_member(name: str) -> bool:
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    has_drive = len(normalised) > 1 and normalised[1] == ":"
    return normalised.startswith("/") or has_drive or ".." in parts


def _zip_sources(path: Path, limits: ZipLimits) -> list[SourceFile]:
    """Members of a zip archive, after refusing path traversal and zip-bomb sizes."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DicomInputError(f"{path}: unreadable zip archive ({exc})") from exc
    if len(infos) > limits.max_members:
        raise DicomInputError(
            f"{path}: zip archive has {len(infos)} members, more than the limit of "
            f"{limits.max_members}"
        )
    unsafe = [info.filename for info in infos if _unsafe_member(info.filename)]
    if unsafe:
        raise DicomInputError(
            f"{path}: zip member(s) with an absolute path or a '..' component (path "
            f"traversal), archive refused: {', '.join(repr(n) for n in unsafe[:5])}"
        )
    encrypted = [info.filename for info in infos if info.flag_bits & 0x1]
    if encrypted:
        raise DicomInputError(
            f"{path}: encrypted zip member(s), e.g. {encrypted[0]!r}: send the archive "
            "without a password"
        )
    total = sum(info.file_size for info in infos)
    too_big = [info.filename for info in infos if info.file_size > limits.max_member_bytes]
    if total > limits.max_total_bytes or too_big:
        raise DicomInputError(
            f"{path}: zip archive expands to {total} bytes (limits: {limits.max_total_bytes} "
            f"in all, {limits.max_member_bytes} per member): refused as a possible zip bomb"
        )
    return [SourceFile(path, info.filename) for info in infos if not info.is_dir()]


# --------------------------------------------------------------------------- header pass


@dataclass(frozen=True)
class _Instance:
    source: SourceFile
    header: Dataset
    transfer_syntax: str

    def uid(self, keyword: str) -> str:
        return str(self.header.get(keyword, "")).strip()

    @property
    def instance_number(self) -> int:
        value = _number(self.header.get("InstanceNumber"))
        return int(value) if value is not None else 0


def _read_header(source: SourceFile, opener: _Opener) -> Dataset | str:
    """Header of a DICOM file, or the reason it is skipped as not being a DICOM image."""
    try:
        with opener.open(source) as fp:
            prefix = fp.read(DICM_OFFSET + 4)
            if prefix[DICM_OFFSET:] != b"DICM":
                return "not a DICOM file (no DICM prefix)"
            fp.seek(0)
            header = pydicom.dcmread(fp, stop_before_pixels=True)
            sop_class = str(header.file_meta.get("MediaStorageSOPClassUID", ""))
            if sop_class == MEDIA_STORAGE_DIRECTORY:
                return "DICOMDIR (media directory, not an image)"
            missing = [kw for kw in REQUIRED_UIDS if not str(header.get(kw, "")).strip()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise DicomInputError(f"{source}: cannot read the file ({exc})") from exc
    except Exception as exc:  # pydicom raises many types for malformed data
        raise DicomInputError(f"{source}: corrupt DICOM file, header unreadable ({exc})") from exc
    if missing:
        raise DicomInputError(
            f"{source}: corrupt or incomplete DICOM file, missing {', '.join(missing)}"
        )
    return header


def _transfer_syntax(header: Dataset) -> str:
    return str(header.file_meta.get("TransferSyntaxUID", "")).strip()


def _read_instances(sources: Iterable[SourceFile], root: Path) -> tuple[list[_Instance], list[str]]:
    instances: list[_Instance] = []
    skipped: list[str] = []
    seen: dict[str, SourceFile] = {}
    with _Opener() as opener:
        for source in sources:
            header = _read_header(source, opener)
            name = _display_name(source, root)
            if isinstance(header, str):
                skipped.append(f"{name}: {header}")
                continue
            instance = _Instance(source, header, _transfer_syntax(header))
            sop_uid = instance.uid("SOPInstanceUID")
            if sop_uid in seen:
                # Exports often hold the same instance twice (e.g. two copies in a zip).
                skipped.append(
                    f"{name}: duplicate of SOP instance in {_display_name(seen[sop_uid], root)}"
                )
                continue
            seen[sop_uid] = source
            instances.append(instance)
    return instances, skipped


def _display_name(source: SourceFile, root: Path) -> str:
    if source.member is not None:
        return source.member
    try:
        return str(source.path.relative_to(root))
    except ValueError:
        return str(source.path)


def read_study(path: Path, *, zip_limits: ZipLimits | None = None) -> Study:
    """Read the headers of every DICOM file under a folder (recursively) or in a zip archive.

    Non-DICOM files (no ``DICM`` prefix) and DICOMDIR are skipped and listed in
    ``Study.skipped``. Raises :class:`DicomInputError` for a file that has the DICOM prefix but
    cannot be parsed, for zip path traversal or oversized archives, for an input without DICOM
    images and for an input that mixes several studies.
    """
    if path.is_dir():
        sources: Iterable[SourceFile] = _folder_sources(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        sources = _zip_sources(path, zip_limits or ZipLimits())
    elif path.exists():
        raise DicomInputError(f"{path}: neither a folder nor a zip archive")
    else:
        raise DicomInputError(f"{path}: no such file or folder")
    instances, skipped = _read_instances(sources, path)
    if not instances:
        raise DicomInputError(
            f"{path}: no DICOM files found ({len(skipped)} other file(s) skipped)"
        )
    _refuse_mixed_studies(instances)
    first = instances[0].header
    return Study(
        study_uid=instances[0].uid("StudyInstanceUID"),
        patient_id=str(first.get("PatientID", "")),
        study_date=str(first.get("StudyDate", "")),
        series=_group_series(instances),
        skipped=skipped,
        source=path,
    )


def _refuse_mixed_studies(instances: Sequence[_Instance]) -> None:
    by_study: dict[str, set[str]] = {}
    for instance in instances:
        by_study.setdefault(instance.uid("StudyInstanceUID"), set()).add(
            instance.uid("SeriesInstanceUID")
        )
    if len(by_study) > 1:
        listing = "; ".join(f"{uid} ({len(s)} series)" for uid, s in sorted(by_study.items()))
        raise DicomInputError(
            f"the input mixes {len(by_study)} studies (StudyInstanceUIDs: {listing}); "
            "send one study per job"
        )


def _group_series(instances: Sequence[_Instance]) -> list[Series]:
    groups: dict[str, list[_Instance]] = {}
    for instance in instances:
        groups.setdefault(instance.uid("SeriesInstanceUID"), []).append(instance)
    series = [_summarise(uid, members) for uid, members in groups.items()]
    return sorted(
        series, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid)
    )


# --------------------------------------------------------------------------- series summary


def _strings(value: Any) -> tuple[str, ...]:
    """A CS value (single or multi-valued) as a tuple of upper-case strings."""
    if value is None or value == "":
        return ()
    items = value if isinstance(value, list | tuple | MultiValue) else [value]
    return tuple(str(v).strip().upper() for v in items if str(v).strip())


def _number(value: Any) -> float | None:
    if isinstance(value, list | tuple | MultiValue):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _functional_groups(header: Dataset, frame: int | None = 0) -> list[Dataset]:
    """Per-frame then shared functional group items of an Enhanced MR frame, most specific first."""
    items: list[Dataset] = []
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame is not None and frame < len(per_frame):
        items.append(per_frame[frame])
    shared = header.get("SharedFunctionalGroupsSequence")
    if shared:
        items.append(shared[0])
    return items


def _find(header: Dataset, keyword: str, frame: int | None = 0) -> Any:
    """An attribute at the top level, else inside a functional-group macro of ``frame``."""
    if keyword in header:
        return header[keyword].value
    for group in _functional_groups(header, frame):
        for element in group:
            if element.VR == "SQ" and element.value and keyword in element.value[0]:
                return element.value[0][keyword].value
    return None


def _scanning_sequence(header: Dataset) -> tuple[str, ...]:
    """ScanningSequence; for Enhanced MR, rebuilt from the MR Pulse Sequence module."""
    classic = _strings(_find(header, "ScanningSequence"))
    if classic:
        return classic
    echo = _strings(_find(header, "EchoPulseSequence"))
    values = [
        v
        for e in echo
        for v in {"SPIN": ["SE"], "GRADIENT": ["GR"], "BOTH": ["SE", "GR"]}.get(e, [])
    ]
    if _strings(_find(header, "InversionRecovery")) == ("YES",):
        values.append("IR")
    if _strings(_find(header, "EchoPlanarPulseSequence")) == ("YES",):
        values.append("EP")
    return tuple(values)


def _echo_time(header: Dataset, frame: int | None = 0) -> float | None:
    value = _find(header, "EchoTime", frame)
    return _number(value if value is not None else _find(header, "EffectiveEchoTime", frame))


def _inversion_time(header: Dataset) -> float | None:
    value = _find(header, "InversionTime")
    return _number(value if value is not None else _find(header, "InversionTimes"))


def _n_frames(header: Dataset) -> int:
    value = header.get("NumberOfFrames")
    return int(value) if value not in (None, "") else 1


def _distinct_echo_times(headers: Iterable[Dataset]) -> tuple[float, ...]:
    times = {round(t, 3) for h in headers if (t := _echo_time(h)) is not None}
    return tuple(sorted(times))


def _summarise(series_uid: str, members: list[_Instance]) -> Series:
    members = sorted(members, key=lambda m: (m.instance_number, m.uid("SOPInstanceUID")))
    first = members[0].header
    spacing = _find(first, "PixelSpacing")
    series_number = _number(first.get("SeriesNumber"))
    sequence_name = _find(first, "SequenceName") or _find(first, "PulseSequenceName") or ""
    return Series(
        series_uid=series_uid,
        description=str(first.get("SeriesDescription", "")).strip(),
        modality=str(first.get("Modality", "")).strip().upper(),
        sop_class_uid=members[0].uid("SOPClassUID"),
        series_number=int(series_number) if series_number is not None else None,
        n_instances=len(members),
        n_frames=sum(_n_frames(m.header) for m in members),
        protocol_name=str(first.get("ProtocolName", "")).strip(),
        sequence_name=str(sequence_name).strip(),
        scanning_sequence=_scanning_sequence(first),
        sequence_variant=_strings(_find(first, "SequenceVariant")),
        scan_options=_strings(_find(first, "ScanOptions")),
        image_type=_strings(first.get("ImageType")),
        inversion_time=_inversion_time(first),
        repetition_time=_number(_find(first, "RepetitionTime")),
        echo_time=_echo_time(first),
        echo_times=_distinct_echo_times(m.header for m in members),
        mr_acquisition_type=str(_find(first, "MRAcquisitionType") or "").strip().upper(),
        slice_thickness=_number(_find(first, "SliceThickness")),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        contrast_agent=str(first.get("ContrastBolusAgent", "")).strip(),
        sop_class_uids=tuple(sorted({m.uid("SOPClassUID") for m in members})),
        transfer_syntaxes=tuple(sorted({m.transfer_syntax for m in members})),
        files=tuple(m.source for m in members),
        headers=tuple(m.header for m in members),
    )


# --------------------------------------------------------------------------- checks


def transfer_syntax_problem(uid: str) -> str | None:
    """Why pixel data in this transfer syntax cannot be decoded here, or None if it can."""
    if uid in NATIVE_TRANSFER_SYNTAXES:
        return None
    if not uid:
        return "no transfer syntax in the file meta information"
    ts = UID(uid)
    label = uid_label(uid)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        return f"unsupported transfer syntax {label}"
    if not decoder.is_available:
        return f"transfer syntax {label} needs a decoder plugin that is not installed"
    return None


def uid_label(uid: str) -> str:
    """A UID with its DICOM name when pydicom knows one, e.g. "RLE Lossless (1.2.840...)"."""
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def series_problem(series: Series) -> str | None:
    """Why a series cannot be assembled into an MR volume at all, or None if it may be."""
    if series.modality != "MR":
        return f"modality {series.modality or 'missing'} is not MR"
    other = [
        uid
        for uid in series.sop_class_uids or (series.sop_class_uid,)
        if uid not in SUPPORTED_SOP_CLASSES
    ]
    if other:
        names = ", ".join(uid_label(uid) for uid in other)
        return (
            f"SOP class {names} is not an MR image (supported: MR Image Storage, "
            "Enhanced MR Image Storage, Legacy Converted Enhanced MR Image Storage)"
        )
    for uid in series.transfer_syntaxes:
        problem = transfer_syntax_problem(uid)
        if problem:
            return problem
    return None


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Frame:
    """Geometry and pixel mapping of one 2D frame, before the series is stacked."""

    source: SourceFile
    header: Dataset
    index: int | None  # 0-based frame of a multi-frame instance
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    shape: tuple[int, int]
    slope: float
    intercept: float
    echo_time: float | None

    def source_frame(self) -> SourceFrame:
        return SourceFrame(
            sop_instance_uid=str(self.header.SOPInstanceUID),
            sop_class_uid=str(self.header.SOPClassUID),
            frame_number=None if self.index is None else self.index + 1,
            source=self.source,
        )

    def label(self) -> str:
        number = self.header.get("InstanceNumber", "?")
        frame = f" frame {self.index + 1}" if self.index is not None else ""
        return f"instance #{number}{frame}"


def _required_vector(
    series: Series,
    header: Dataset,
    frame: int | None,
    keyword: str,
    length: int,
    source: SourceFile,
) -> np.ndarray:
    value = _find(header, keyword, frame)
    try:
        vector = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        vector = np.empty(0)
    if vector.shape != (length,) or not np.isfinite(vector).all():
        where = f" frame {frame + 1}" if frame is not None else ""
        raise series.error(f"{source}{where}: missing or invalid {keyword} ({value!r})")
    return vector


def _make_frame(series: Series, source: SourceFile, header: Dataset, index: int | None) -> _Frame:
    frame = index if index is not None else 0
    spacing = _required_vector(series, header, index, "PixelSpacing", 2, source)
    slope = _number(_find(header, "RescaleSlope", frame))
    intercept = _number(_find(header, "RescaleIntercept", frame))
    return _Frame(
        source=source,
        header=header,
        index=index,
        position=_required_vector(series, header, index, "ImagePositionPatient", 3, source),
        orientation=_required_vector(series, header, index, "ImageOrientationPatient", 6, source),
        pixel_spacing=(float(spacing[0]), float(spacing[1])),
        shape=(int(header.get("Rows", 0)), int(header.get("Columns", 0))),
        slope=1.0 if slope is None else slope,
        intercept=0.0 if intercept is None else intercept,
        echo_time=_echo_time(header, frame),
    )


# A brain MR series larger than this is not one (1 GiB as float32; 512 x 512 x 1024): refuse
# it before decoding rather than let a worker run out of memory.
MAX_SERIES_VOXELS = 512 * 512 * 1024


def _check_size(series: Series, frames: list[_Frame]) -> None:
    voxels = sum(f.shape[0] * f.shape[1] for f in frames)
    if voxels > MAX_SERIES_VOXELS:
        raise series.error(
            f"{len(frames)} frames of {frames[0].shape[0]}x{frames[0].shape[1]} make "
            f"{voxels:,} voxels, more than the limit of {MAX_SERIES_VOXELS:,} for one series"
        )


def _series_frames(series: Series, echo_time: float | None) -> list[_Frame]:
    frames: list[_Frame] = []
    for source, header in zip(series.files, series.headers, strict=True):
        if "PerFrameFunctionalGroupsSequence" in header:
            frames.extend(_make_frame(series, source, header, i) for i in range(_n_frames(header)))
        else:
            frames.append(_make_frame(series, source, header, None))
    if echo_time is not None:
        frames = [
            f for f in frames if f.echo_time is not None and abs(f.echo_time - echo_time) < 0.01
        ]
        if not frames:
            raise series.error(
                f"no image with echo time {echo_time} ms (series has {series.echo_times})"
            )
    return frames


@dataclass(frozen=True)
class _Stack:
    order: list[int]
    origin: np.ndarray
    direction: np.ndarray  # 3×3, columns: row direction, column direction, slice normal
    spacing: tuple[float, float, float]


def _common_value(series: Series, frames: Sequence[_Frame], what: str, key: Any) -> Any:
    values = Counter(key(f) for f in frames)
    if len(values) > 1:
        listing = ", ".join(f"{v} ({n} slices)" for v, n in values.most_common(5))
        raise series.error(f"slices differ in {what}: {listing}")
    return next(iter(values))


def _orientation(series: Series, frames: Sequence[_Frame]) -> np.ndarray:
    """The series' common row/column/normal directions, checked orthogonal."""
    reference = frames[0].orientation
    for frame in frames[1:]:
        if not np.allclose(frame.orientation, reference, atol=ORIENTATION_ATOL):
            raise series.error(
                "slices have different ImageOrientationPatient "
                f"({_fmt(reference)} vs {_fmt(frame.orientation)} in {frame.label()}): "
                "a volume needs one orientation for all slices"
            )
    row, col = reference[:3], reference[3:]
    if (
        abs(np.linalg.norm(row) - 1) > 0.01
        or abs(np.linalg.norm(col) - 1) > 0.01
        or abs(float(row @ col)) > 0.01
    ):
        raise series.error(
            f"ImageOrientationPatient {_fmt(reference)} is not two unit, orthogonal vectors"
        )
    # Re-orthonormalise: 6-digit decimal strings leave ~1e-6 errors that ITK would carry.
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    return np.column_stack([row, col, np.cross(row, col)])


def _pixel_spacing(series: Series, frames: Sequence[_Frame]) -> tuple[float, float]:
    reference = frames[0].pixel_spacing
    for frame in frames[1:]:
        if not np.allclose(frame.pixel_spacing, reference, rtol=1e-4, atol=1e-4):
            raise series.error(
                f"slices differ in PixelSpacing: {_fmt(reference)} vs "
                f"{_fmt(frame.pixel_spacing)} in {frame.label()}"
            )
    if min(reference) <= 0:
        raise series.error(f"PixelSpacing {_fmt(reference)} is not positive")
    return reference


def _fmt(values: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _stack(series: Series, frames: Sequence[_Frame]) -> _Stack:
    if len(frames) < 2:
        raise series.error(f"{len(frames)} slice(s): a 3D volume needs at least 2")
    direction = _orientation(series, frames)
    rows_cols = _common_value(series, frames, "Rows/Columns", lambda f: f.shape)
    spacing = _pixel_spacing(series, frames)
    if 0 in rows_cols:
        raise series.error("Rows or Columns is missing or zero")
    positions = np.array([f.position for f in frames])
    distances = positions @ direction[:, 2]
    order = [int(i) for i in np.argsort(distances, kind="stable")]
    _check_in_plane(series, frames, positions, direction, order)
    gap = _check_gaps(series, [frames[i] for i in order], distances[order])
    return _Stack(order, positions[order[0]], direction, (spacing[1], spacing[0], gap))


def _check_in_plane(
    series: Series,
    frames: Sequence[_Frame],
    positions: np.ndarray,
    direction: np.ndarray,
    order: list[int],
) -> None:
    """Refuse slices that are not stacked straight along the normal (shear, tilt)."""
    in_plane = positions @ direction[:, :2]
    offset = np.abs(in_plane - in_plane[order[0]]).max(axis=1)
    worst = int(np.argmax(offset))
    if offset[worst] > IN_PLANE_ATOL_MM:
        raise series.error(
            f"slices are not stacked along their normal: {frames[worst].label()} is shifted "
            f"{offset[worst]:.3f} mm within the slice plane (sheared or tilted stack)"
        )


def _check_gaps(series: Series, frames: Sequence[_Frame], distances: np.ndarray) -> float:
    """Check a regular slice spacing; return it (mm). Frames and distances are sorted."""
    gaps = np.diff(distances)
    duplicates = [i for i, g in enumerate(gaps) if g < SPACING_ATOL_MM]
    if duplicates:
        raise series.error(_duplicate_message(series, frames, distances, duplicates))
    nominal = float(np.median(gaps))
    tol = max(SPACING_ATOL_MM, SPACING_RTOL * nominal)
    irregular = [i for i, g in enumerate(gaps) if abs(g - nominal) > tol]
    if not irregular:
        return float((distances[-1] - distances[0]) / (len(distances) - 1))
    details = [_gap_detail(frames, distances, i, nominal) for i in irregular[:5]]
    more = f" and {len(irregular) - 5} more" if len(irregular) > 5 else ""
    multiples = [round(gaps[i] / nominal) for i in irregular]
    if all(
        k >= 2 and abs(gaps[i] - k * nominal) <= tol * k
        for i, k in zip(irregular, multiples, strict=True)
    ):
        absent = sum(k - 1 for k in multiples)
        raise series.error(
            f"missing slice(s): {absent} slice(s) absent from a stack with {nominal:.4g} mm "
            f"spacing, gaps at {'; '.join(details)}{more}"
        )
    raise series.error(
        f"inconsistent slice spacing: expected a regular {nominal:.4g} mm gap "
        f"(± {tol:.2g} mm) but found {'; '.join(details)}{more}"
    )


def _gap_detail(frames: Sequence[_Frame], distances: np.ndarray, i: int, nominal: float) -> str:
    gap = distances[i + 1] - distances[i]
    return (
        f"{gap:.4g} mm between {frames[i].label()} and {frames[i + 1].label()} "
        f"({distances[i]:.2f} → {distances[i + 1]:.2f} mm along the normal)"
    )


def _duplicate_message(
    series: Series, frames: Sequence[_Frame], distances: np.ndarray, duplicates: list[int]
) -> str:
    pairs = "; ".join(
        f"{frames[i].label()} and {frames[i + 1].label()} at {distances[i]:.2f} mm"
        for i in duplicates[:5]
    )
    message = f"duplicate slice positions: {len(duplicates)} slice(s) share a position ({pairs})"
    echoes = sorted({f.echo_time for f in frames if f.echo_time is not None})
    if len(echoes) > 1:
        listing = ", ".join(f"{t:g}" for t in echoes)
        message += f"; the series holds several echoes (TE {listing} ms): load one echo_time"
    return message


# --------------------------------------------------------------------------- pixels


def _decode(series: Series, source: SourceFile, opener: _Opener) -> np.ndarray:
    try:
        with opener.open(source) as fp:
            dataset = pydicom.dcmread(fp)
            pixels = dataset.pixel_array
    except Exception as exc:  # pydicom and its plugins raise many types for damaged data
        raise series.error(
            f"{source}: truncated or corrupt file, pixel data unreadable ({exc})"
        ) from exc
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric != "MONOCHROME2" or int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise series.error(
            f"{source}: PhotometricInterpretation {photometric!r} (only MONOCHROME2 is supported)"
        )
    return np.asarray(pixels)


def _assemble(series: Series, frames: Sequence[_Frame]) -> np.ndarray:
    rows, cols = frames[0].shape
    volume = np.empty((len(frames), rows, cols), dtype=np.float32)
    multi_frame: dict[SourceFile, np.ndarray] = {}
    with _Opener() as opener:
        for z, frame in enumerate(frames):
            if frame.index is None:
                plane = _decode(series, frame.source, opener)
            else:
                if frame.source not in multi_frame:
                    multi_frame[frame.source] = _decode(series, frame.source, opener)
                decoded = multi_frame[frame.source]
                plane = decoded[frame.index] if decoded.ndim == 3 else decoded
            if plane.shape != (rows, cols):
                raise series.error(
                    f"{frame.source}: pixel data shape {plane.shape}, expected {(rows, cols)}"
                )
            volume[z] = plane.astype(np.float64) * frame.slope + frame.intercept
    return volume


def load_series_volume(series: Series, *, echo_time: float | None = None) -> SeriesVolume:
    """Decode one series and stack its slices into a float32 SimpleITK volume (LPS geometry).

    ``echo_time`` (ms) keeps only the images of that echo of a multi-echo series. Raises
    :class:`DicomInputError` for a non-MR or non-image series, an undecodable transfer syntax,
    several orientations, duplicate positions, missing slices, irregular spacing, and for
    truncated or corrupt files (named).
    """
    problem = series_problem(series)
    if problem:
        raise series.error(problem)
    frames = _series_frames(series, echo_time)
    _check_size(series, frames)
    stack = _stack(series, frames)
    ordered = [frames[i] for i in stack.order]
    image = sitk.GetImageFromArray(_assemble(series, ordered))
    image.SetOrigin(tuple(float(v) for v in stack.origin))
    image.SetSpacing(stack.spacing)
    image.SetDirection(tuple(float(v) for v in stack.direction.ravel()))
    return SeriesVolume(
        series=series,
        image=image,
        frames=[f.source_frame() for f in ordered],
        headers=[f.header for f in ordered],
    )


def read_source_datasets(volume: SeriesVolume) -> list[Dataset]:
    """Full datasets (pixel data included) behind ``volume``, in its z order.

    One dataset per distinct source file: a single-frame series gives one per slice, an
    Enhanced MR instance appears once. Output objects (SEG) reference these instances.
    """
    seen: dict[SourceFile, None] = {}
    for frame in volume.frames:
        seen.setdefault(frame.source, None)
    datasets: list[Dataset] = []
    with _Opener() as opener:
        for source in seen:
            with opener.open(source) as fh:
                datasets.append(pydicom.dcmread(fh))
    return datasets
