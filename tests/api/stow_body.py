"""Building STOW-RS request bodies in tests."""

from __future__ import annotations

BOUNDARY = "mslesion-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'


def multipart(
    parts: list[bytes], boundary: str = BOUNDARY, part_type: str = "application/dicom"
) -> bytes:
    """A multipart/related body whose parts all declare ``part_type``."""
    out = bytearray()
    for data in parts:
        out += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)
