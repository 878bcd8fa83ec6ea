"""An incremental parser of ``multipart/related`` bodies (RFC 2046 / RFC 2387), for STOW-RS.

The body is fed chunk by chunk as it arrives; each part is handed back as soon as its closing
delimiter has been seen, so a request of many instances never sits in memory whole. Written
here rather than borrowed from a form-data parser because STOW-RS clients differ in details
form parsers are strict about: dicomweb-client starts the body with CRLF before the first
delimiter and ends it without a trailing CRLF; curl users send a bare delimiter first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mslesion.services.errors import InputError

CRLF = b"\r\n"
MAX_HEADER_BYTES = 16 * 1024  # the header block of one part; DICOM parts carry one or two


class MultipartError(InputError, ValueError):
    """The body is not a well-formed multipart message (the gateway answers 400)."""

    http_status = 400


@dataclass
class Part:
    """One body part: its headers (names lower-cased) and its content."""

    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    @property
    def content_type(self) -> str | None:
        """The part's media type, lower-cased and without parameters, if it declared one."""
        value = self.headers.get("content-type")
        return value.split(";", 1)[0].strip().lower() if value else None


class MultipartStreamParser:
    """Feed bytes with :meth:`feed`; collect finished parts; call :meth:`close` at the end."""

    _PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _EPILOGUE = range(5)

    def __init__(self, boundary: str) -> None:
        if not boundary or len(boundary) > 70:
            raise MultipartError("the multipart boundary must be 1 to 70 characters")
        # Every delimiter is CRLF "--" boundary; the first one may open the body without its
        # CRLF, so the stream is treated as if it began with one.
        self._delimiter = CRLF + b"--" + boundary.encode("latin-1")
        self._buffer = bytearray(CRLF)
        self._state = self._PREAMBLE
        self._part: Part | None = None
        self._body = bytearray()
        self.parts_seen = 0

    @property
    def finished(self) -> bool:
        """True once the closing delimiter has been read."""
        return self._state == self._EPILOGUE

    def feed(self, chunk: bytes) -> list[Part]:
        """Consume ``chunk``; return the parts completed by it (possibly none)."""
        if self._state == self._EPILOGUE:
            return []  # the epilogue is ignored (RFC 2046 5.1.1)
        self._buffer += chunk
        done: list[Part] = []
        while self._step(done):
            pass
        return done

    def close(self) -> None:
        """Raise :class:`MultipartError` unless the body ended with the closing delimiter."""
        if self._state == self._EPILOGUE:
            return
        if self.parts_seen == 0 and self._state == self._PREAMBLE:
            raise MultipartError("no multipart delimiter with the declared boundary in the body")
        raise MultipartError("the multipart body ended before its closing delimiter")

    # -- states ---------------------------------------------------------------------------

    def _step(self, done: list[Part]) -> bool:
        """Advance one state if the buffer allows; False when more input is needed."""
        if self._state == self._PREAMBLE:
            return self._scan_preamble()
        if self._state == self._AFTER_DELIMITER:
            return self._after_delimiter()
        if self._state == self._HEADERS:
            return self._read_headers()
        if self._state == self._BODY:
            return self._read_body(done)
        self._buffer.clear()  # epilogue
        return False

    def _scan_preamble(self) -> bool:
        at = self._buffer.find(self._delimiter)
        if at < 0:
            # Keep only what could be the start of a delimiter; the preamble is discarded.
            keep = len(self._delimiter) - 1
            if len(self._buffer) > keep:
                del self._buffer[: len(self._buffer) - keep]
            return False
        del self._buffer[: at + len(self._delimiter)]
        self._state = self._AFTER_DELIMITER
        return True

    def _after_delimiter(self) -> bool:
        if len(self._buffer) < 2:
            return False
        if self._buffer[:2] == b"--":
            self._state = self._EPILOGUE
            self._buffer.clear()
            return False
        end = self._buffer.find(CRLF)
        if end < 0:
            if len(self._buffer) > 1024:
                raise MultipartError("a multipart delimiter line is not ended by CRLF")
            return False
        if self._buffer[:end].strip(b" \t"):  # only transport padding may follow a delimiter
            raise MultipartError("unexpected characters after a multipart delimiter")
        del self._buffer[: end + 2]
        self._part = Part()
        self._state = self._HEADERS
        return True

    def _read_headers(self) -> bool:
        if self._buffer[:2] == CRLF:  # a part without headers
            del self._buffer[:2]
            self._state = self._BODY
            return True
        end = self._buffer.find(CRLF + CRLF)
        if end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise MultipartError(f"a part's headers exceed {MAX_HEADER_BYTES} bytes")
            return False
        assert self._part is not None
        self._part.headers = _parse_headers(bytes(self._buffer[:end]))
        del self._buffer[: end + 4]
        self._state = self._BODY
        return True

    def _read_body(self, done: list[Part]) -> bool:
        at = self._buffer.find(self._delimiter)
        if at < 0:
            # Move what certainly belongs to the body out of the search buffer.
            safe = len(self._buffer) - (len(self._delimiter) - 1)
            if safe > 0:
                self._body += self._buffer[:safe]
                del self._buffer[:safe]
            return False
        self._body += self._buffer[:at]
        del self._buffer[: at + len(self._delimiter)]
        assert self._part is not None
        self._part.content = bytes(self._body)
        self._body = bytearray()
        done.append(self._part)
        self.parts_seen += 1
        self._part = None
        self._state = self._AFTER_DELIMITER
        return True


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise MultipartError(f"malformed part header line: {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


@dataclass(frozen=True)
class MediaType:
    """A parsed Content-Type: type/subtype (lower-cased) and its parameters."""

    media_type: str
    params: dict[str, str]


def parse_content_type(value: str) -> MediaType:
    """Split a Content-Type into its media type and parameters (quoted values unquoted)."""
    head, *rest = _split_params(value)
    params: dict[str, str] = {}
    for item in rest:
        name, sep, val = item.partition("=")
        if not sep:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[name.strip().lower()] = val
    return MediaType(head.strip().lower(), params)


def _split_params(value: str) -> list[str]:
    """Split on semicolons outside quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return items
