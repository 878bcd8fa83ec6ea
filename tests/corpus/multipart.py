"""STOW-RS request bodies, well-formed and malformed, for the gateway's tests.

``multipart_cases()`` returns :class:`MultipartCase` records: the Content-Type header, the
body bytes and the expected answer (PS3.18 10.5.3: 200 all stored, 202 some failed, 409 none
stored, 400 malformed request, 415 unsupported media type) with, where the request is
processed part by part, the expected outcome of each part in order (:class:`Expected`,
whose status is the FailureReason of a FailedSOPSequence item).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import CTImageStorage

from mslesion.services.ingest import DicomStatus
from tests.corpus.base import mr_dataset, part10
from tests.corpus.expected import Expected
from tests.corpus.series import one_study_two_patients, several_patients

CRLF = b"\r\n"
BOUNDARY = "corpus-boundary-7d1f"
DICOM_HEADERS: dict[str, str] = {"Content-Type": "application/dicom"}
STORED = Expected.stored()
NOT_DICOM = Expected.refused(DicomStatus.CANNOT_UNDERSTAND, "not a readable DICOM")


def stow_content_type(boundary: str = BOUNDARY, *, quoted_type: bool = True) -> str:
    """The Content-Type of a STOW-RS request."""
    kind = '"application/dicom"' if quoted_type else "application/dicom"
    return f'multipart/related; type={kind}; boundary="{boundary}"'


@dataclass(frozen=True)
class MultipartCase:
    """One STOW-RS request: header, body, expected HTTP status and per-part outcomes.

    ``parts`` is None where the request is refused as a whole, or where (for a body broken
    after complete parts) whether those parts were stored is left to the gateway; a retry is
    idempotent either way. ``gap`` names an expectation ``services.ingest`` does not meet yet.
    """

    name: str
    content_type: str
    body: bytes
    expected_status: int
    parts: tuple[Expected, ...] | None = None
    note: str = ""
    gap: str | None = field(default=None)


def multipart_body(
    parts: list[tuple[dict[str, str], bytes]],
    boundary: str = BOUNDARY,
    *,
    newline: bytes = CRLF,
    closing: bool = True,
    leading_newline: bool = False,
) -> bytes:
    """A ``multipart/related`` body; ``newline`` LF makes a non-conformant body."""
    out = bytearray(newline if leading_newline else b"")
    delimiter = b"--" + boundary.encode("latin-1")
    for headers, content in parts:
        out += delimiter + newline
        for name, value in headers.items():
            out += f"{name}: {value}".encode("latin-1") + newline
        out += newline + content + newline
    if closing:
        out += delimiter + b"--" + newline
    return bytes(out)


def _dicom(n: int = 1) -> list[tuple[dict[str, str], bytes]]:
    return [(DICOM_HEADERS, part10(mr_dataset())) for _ in range(n)]


def _well_formed() -> list[MultipartCase]:
    two = multipart_body(_dicom(2))
    client_style = multipart_body(_dicom(2), leading_newline=True)[:-2]  # no trailing CRLF
    odd_boundary = "a'(b)+_,-./:=?c"  # every non-alphanumeric character RFC 2046 allows
    patients = [(DICOM_HEADERS, part10(ds)) for ds in several_patients()]
    return [
        MultipartCase("stow-two-instances", stow_content_type(), two, 200, (STORED, STORED)),
        MultipartCase(
            "stow-type-unquoted", stow_content_type(quoted_type=False), two, 200, (STORED, STORED)
        ),
        MultipartCase(
            "stow-leading-crlf-no-trailing-crlf",
            stow_content_type(),
            client_style,
            200,
            (STORED, STORED),
            note="as dicomweb-client sends it",
        ),
        MultipartCase(
            "stow-boundary-with-special-characters",
            stow_content_type(odd_boundary),
            multipart_body(_dicom(1), odd_boundary),
            200,
            (STORED,),
        ),
        MultipartCase(
            "stow-preamble-and-epilogue",
            stow_content_type(),
            b"ignored preamble\r\n" + two + b"ignored epilogue\r\n",
            200,
            (STORED, STORED),
        ),
        MultipartCase(
            "stow-several-patients",
            stow_content_type(),
            multipart_body(patients),
            200,
            (STORED,) * len(patients),
            note="two PatientIDs in two studies: PS3.18 allows several studies",
        ),
        MultipartCase(
            "stow-part-without-content-type",
            stow_content_type(),
            multipart_body([({}, part10(mr_dataset()))]),
            200,
            (STORED,),
            note="the request's type parameter declares the parts application/dicom; the "
            "bytes are checked as DICOM anyway",
        ),
    ]


def _per_part_failures() -> list[MultipartCase]:
    ct = part10(mr_dataset(sop_class=CTImageStorage))
    text = ({"Content-Type": "application/dicom"}, b"this is not DICOM")
    mixed = one_study_two_patients()
    return [
        MultipartCase(
            "stow-non-dicom-part-among-dicom",
            stow_content_type(),
            multipart_body([*_dicom(1), text, *_dicom(1)]),
            202,
            (STORED, NOT_DICOM, STORED),
        ),
        MultipartCase(
            "stow-all-parts-fail",
            stow_content_type(),
            multipart_body([text, text]),
            409,
            (NOT_DICOM, NOT_DICOM),
        ),
        MultipartCase(
            "stow-ct-instance",
            stow_content_type(),
            multipart_body([(DICOM_HEADERS, ct)]),
            409,
            (Expected.refused(DicomStatus.SOP_CLASS_NOT_SUPPORTED, "not MR"),),
        ),
        MultipartCase(
            "stow-one-study-two-patients",
            stow_content_type(),
            multipart_body([(DICOM_HEADERS, part10(ds)) for ds in mixed]),
            202,
            (STORED, Expected.refused(DicomStatus.DATASET_DOES_NOT_MATCH, "PatientID")),
        ),
    ]


def _malformed() -> list[MultipartCase]:
    one = _dicom(1)
    body = multipart_body(one)
    header_only = b"--" + BOUNDARY.encode() + CRLF + b"Content-Type: application/dicom" + CRLF
    header_only += b"--" + BOUNDARY.encode() + b"--" + CRLF
    no_colon = body.replace(b"Content-Type: application/dicom", b"Content-Type application/dicom")
    return [
        MultipartCase(
            "no-boundary-parameter", 'multipart/related; type="application/dicom"', body, 400
        ),
        MultipartCase(
            "boundary-too-long", stow_content_type("b" * 71), multipart_body(one, "b" * 71), 400
        ),
        MultipartCase("boundary-not-in-body", stow_content_type("not-the-boundary"), body, 400),
        MultipartCase(
            "missing-closing-delimiter",
            stow_content_type(),
            multipart_body(one, closing=False),
            400,
        ),
        MultipartCase(
            "missing-closing-delimiter-after-a-complete-part",
            stow_content_type(),
            multipart_body(_dicom(2), closing=False),
            400,
            note="the first part is complete; storing it is allowed",
        ),
        MultipartCase("part-header-only", stow_content_type(), header_only, 400),
        MultipartCase(
            "lf-line-endings", stow_content_type(), multipart_body(one, newline=b"\n"), 400
        ),
        MultipartCase(
            "garbage-after-delimiter",
            stow_content_type(),
            body.replace(CRLF, b" junk" + CRLF, 1),
            400,
        ),
        MultipartCase("malformed-part-header-line", stow_content_type(), no_colon, 400),
        MultipartCase("empty-body", stow_content_type(), b"", 400),
    ]


def _media_types() -> list[MultipartCase]:
    body = multipart_body(_dicom(1))
    return [
        MultipartCase(
            "not-multipart-application-dicom", "application/dicom", part10(mr_dataset()), 415
        ),
        MultipartCase("application-json", "application/json", b"{}", 415),
        MultipartCase(
            "multipart-type-dicom-json",
            f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
            body,
            415,
        ),
        MultipartCase(
            "multipart-form-data", f"multipart/form-data; boundary={BOUNDARY}", body, 415
        ),
    ]


def multipart_cases() -> list[MultipartCase]:
    """Every STOW-RS body case (fresh UIDs on every call)."""
    return [*_well_formed(), *_per_part_failures(), *_malformed(), *_media_types()]
