"""Forwarding of a job's SEG and SR to configured destinations.

Two kinds of destination, written as URLs in ``MSLESION_FORWARD_DESTINATIONS``:

* ``dicom://AET@host:port`` — a C-STORE SCU association to a PACS (called AE title ``AET``,
  calling AE title ``settings.forward_calling_aet``);
* ``http(s)://host[:port]/path`` — a DICOMweb service: STOW-RS ``POST <url>/studies``.

Destinations are parsed with :meth:`Destination.parse` when a worker starts, so a typo in the
configuration stops the worker with a clear message instead of failing every delivery later.
Every delivery problem is a :class:`ForwardError` whose text says what the peer answered, in
its protocol's terms (association rejected, C-STORE status 0xA700, HTTP 409 with the
FailedSOPSequence FailureReason...). The text lands in the forward row's ``last_error``.
"""

from __future__ import annotations

import json
import logging
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
import pydicom
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pynetdicom import AE
from pynetdicom.status import code_to_category

from mslesion.services.config import Settings
from mslesion.services.errors import MSLesionError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
"""Seconds to wait for a TCP connection to a destination."""
NETWORK_TIMEOUT_S = 60.0
"""Seconds to wait for any answer (association, C-STORE response, HTTP response)."""

_EXPECTED = "expected dicom://AET@host:port or http(s)://host[:port]/path"
_UNCOMPRESSED = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
)


class ForwardError(MSLesionError):
    """A delivery failed; ``str(error)`` is the readable reason kept as the forward's error."""

    http_status = 502  # a destination the node forwards to failed


class DestinationError(MSLesionError, ValueError):
    """A configured destination string is not a valid destination."""


class DestinationKind(StrEnum):
    """How results reach a destination."""

    CSTORE = "c-store"
    STOW = "stow-rs"


class Destination(BaseModel):
    """One validated forwarding destination."""

    model_config = ConfigDict(frozen=True)

    kind: DestinationKind
    host: str
    port: int = Field(ge=1, le=65535)
    ae_title: str | None = Field(default=None, description="Called AE title (C-STORE only).")
    url: str | None = Field(default=None, description="DICOMweb base URL (STOW-RS only).")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value:
            raise ValueError("the host is missing")
        return value

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str | None) -> str | None:
        # PS3.5 AE VR: at most 16 characters, no backslash or control characters, not blank.
        if value is None:
            return None
        if not value.strip():
            raise ValueError("the AE title is empty")
        if len(value) > 16:
            raise ValueError(f"AE title {value!r} is longer than 16 characters")
        if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(f"AE title {value!r} contains a backslash or control character")
        return value

    @classmethod
    def parse(cls, text: str) -> Destination:
        """Parse ``dicom://AET@host:port`` or ``http(s)://host[:port]/path``.

        Raises:
            DestinationError: naming the destination (credentials hidden) and the problem.
        """
        try:
            if "://" not in text:
                raise ValueError("no scheme")
            parts = urlsplit(text.strip())
            if parts.scheme == "dicom":
                return cls._cstore(parts)
            if parts.scheme in ("http", "https"):
                return cls._stow(parts)
            raise ValueError(f"unknown scheme {parts.scheme!r}")
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(map(str, err['loc']))}: {str(err['msg']).removeprefix('Value error, ')}"
                for err in exc.errors()
            )
            raise DestinationError(f"forward destination {redact(text)!r}: {reasons}") from None
        except ValueError as exc:
            raise DestinationError(
                f"forward destination {redact(text)!r}: {exc} ({_EXPECTED})"
            ) from None

    @classmethod
    def _cstore(cls, parts: SplitResult) -> Destination:
        if not parts.username:
            raise ValueError("the called AE title is missing")
        if parts.port is None:  # .port itself raises ValueError for a non-numeric port
            raise ValueError("the port is missing")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("a DICOM destination has no path or query")
        return cls(
            kind=DestinationKind.CSTORE,
            host=parts.hostname or "",
            port=parts.port,
            ae_title=parts.username,
        )

    @classmethod
    def _stow(cls, parts: SplitResult) -> Destination:
        default_port = 443 if parts.scheme == "https" else 80
        if parts.query or parts.fragment:
            raise ValueError("a DICOMweb base URL has no query or fragment")
        return cls(
            kind=DestinationKind.STOW,
            host=parts.hostname or "",
            port=parts.port or default_port,
            url=parts.geturl().rstrip("/"),
        )

    def __str__(self) -> str:
        if self.kind is DestinationKind.CSTORE:
            return f"{self.ae_title}@{self.host}:{self.port}"
        return redact(self.url or "")


def redact(text: str) -> str:
    """``text`` with any password in its URL replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(text)
        if parts.password is None:
            return text
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return text


def parse_destinations(texts: list[str]) -> list[Destination]:
    """Validate every configured destination (call at start); raise :class:`DestinationError`."""
    return [Destination.parse(text) for text in texts]


def send(destination: str, files: list[Path], settings: Settings) -> None:
    """Deliver ``files`` (Part 10 DICOM: the SEG and SR) to ``destination``.

    Raises:
        ForwardError: the destination is invalid, unreachable or refused an instance.
    """
    try:
        dest = Destination.parse(destination)
    except DestinationError as exc:
        raise ForwardError(str(exc)) from None
    if not files:
        raise ForwardError("the job has no SEG or SR to send")
    if dest.kind is DestinationKind.CSTORE:
        _send_cstore(dest, files, settings)
    else:
        _send_stow(dest, files)
    log.info("sent %d instance(s) to %s", len(files), dest)


# --- C-STORE SCU ------------------------------------------------------------------------------


def _headers(files: list[Path]) -> list[pydicom.Dataset]:
    try:
        return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise ForwardError(f"cannot read a result file to send: {exc}") from exc


def _contexts(headers: list[pydicom.Dataset]) -> dict[str, list[str]]:
    """SOP class -> transfer syntaxes to propose for these files.

    Each file is sent as stored, so its own transfer syntax comes first (uncompressed files may
    also go in the other LE syntax).
    """
    contexts: dict[str, list[str]] = {}
    for ds in headers:
        syntax = str(ds.file_meta.TransferSyntaxUID)
        offered = contexts.setdefault(str(ds.SOPClassUID), [])
        for ts in (syntax, *(_UNCOMPRESSED if syntax in _UNCOMPRESSED else ())):
            if ts not in offered:
                offered.append(ts)
    return contexts


def _send_cstore(dest: Destination, files: list[Path], settings: Settings) -> None:
    headers = _headers(files)
    ae = AE(ae_title=settings.forward_calling_aet)
    ae.connection_timeout = CONNECT_TIMEOUT_S
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = NETWORK_TIMEOUT_S
    for sop_class, syntaxes in _contexts(headers).items():
        ae.add_requested_context(sop_class, syntaxes)
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title or "")
    if not assoc.is_established:
        if assoc.is_rejected:
            raise ForwardError(
                f"{dest}: association rejected (calling AE {settings.forward_calling_aet!r}, "
                f"called AE {dest.ae_title!r})"
            )
        raise ForwardError(f"{dest}: no association (connection refused, timed out or aborted)")
    try:
        for path, ds in zip(files, headers, strict=True):
            _store_one(assoc, dest, path, ds)
    finally:
        if assoc.is_established:
            assoc.release()


def _store_one(assoc: Any, dest: Destination, path: Path, ds: pydicom.Dataset) -> None:
    what = f"{ds.get('Modality', '?')} {ds.SOPInstanceUID}"
    try:
        status = assoc.send_c_store(path)
    except (ValueError, RuntimeError) as exc:  # no accepted presentation context, etc.
        raise ForwardError(f"{dest}: cannot send {what}: {exc}") from exc
    if "Status" not in status:
        raise ForwardError(f"{dest}: no C-STORE response for {what} (timeout or connection lost)")
    code = int(status.Status)
    category = code_to_category(code)
    # PS3.4 B.2.3: a Warning status (0xB000, 0xB006, 0xB007) means the instance was stored.
    if category not in ("Success", "Warning"):
        comment = f": {status.ErrorComment}" if "ErrorComment" in status else ""
        raise ForwardError(
            f"{dest}: C-STORE of {what} failed with status 0x{code:04X} ({category}){comment}"
        )
    if category == "Warning":
        log.warning("%s stored %s with warning status 0x%04X", dest, what, code)


# --- STOW-RS ----------------------------------------------------------------------------------


def multipart_related(parts: list[bytes]) -> tuple[bytes, str]:
    """A ``multipart/related; type="application/dicom"`` body and its Content-Type."""
    boundary = uuid.uuid4().hex
    while any(boundary.encode() in part for part in parts):  # practically never
        boundary = uuid.uuid4().hex
    dash = f"--{boundary}".encode()
    body = b"".join(
        dash + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in parts
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return body + dash + b"--\r\n", content_type


def _send_stow(dest: Destination, files: list[Path]) -> None:
    try:
        body, content_type = multipart_related([f.read_bytes() for f in files])
    except OSError as exc:
        raise ForwardError(f"cannot read a result file to send: {exc}") from exc
    url = f"{dest.url}/studies"
    try:
        response = httpx.post(
            url,
            content=body,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
            timeout=httpx.Timeout(NETWORK_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )
    except httpx.HTTPError as exc:
        raise ForwardError(f"{dest}: STOW-RS request failed ({type(exc).__name__}: {exc})") from exc
    failures = failed_sops(response.content)
    if response.is_success and not failures:
        return
    detail = f"; FailedSOPSequence: {'; '.join(failures)}" if failures else ""
    raise ForwardError(f"{dest}: STOW-RS answered HTTP {response.status_code}{detail}")


def failed_sops(content: bytes) -> list[str]:
    """``"<SOPInstanceUID>: FailureReason 0xNNNN"`` for each FailedSOPSequence item.

    The items are read from a PS3.18 DICOM JSON response; the list is empty when there is none
    or the body is not JSON.
    """
    try:
        doc = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        return []
    if isinstance(doc, list):  # some servers wrap the response dataset in a list
        doc = doc[0] if doc else None
    if not isinstance(doc, dict):
        return []
    items = (doc.get("00081198") or {}).get("Value") or []
    out = []
    for item in items:
        uid = ((item.get("00081155") or {}).get("Value") or ["?"])[0]
        reason = ((item.get("00081197") or {}).get("Value") or [None])[0]
        out.append(
            f"{uid}: FailureReason 0x{int(reason):04X}"
            if isinstance(reason, int)
            else f"{uid}: failed"
        )
    return out
