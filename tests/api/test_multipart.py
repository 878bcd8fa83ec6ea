"""The streaming multipart/related parser, fed in every possible split of a body."""

from __future__ import annotations

import pytest

from mslesion.api.multipart import MultipartError, MultipartStreamParser, parse_content_type

BOUNDARY = "b0und4ry"
PARTS = [b"first\r\n--not-a-delimiter", b"", b"\r\n--b0und4rx: near-delimiter"]


def body(prefix: bytes = b"", suffix: bytes = b"\r\n") -> bytes:
    out = bytearray(prefix)
    for i, data in enumerate(PARTS):
        out += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\nX-N: {i}\r\n\r\n".encode()
        out += data + b"\r\n"
    return bytes(out) + f"--{BOUNDARY}--".encode() + suffix


def parse(chunks: list[bytes]) -> list[bytes]:
    parser = MultipartStreamParser(BOUNDARY)
    parts = [p for chunk in chunks for p in parser.feed(chunk)]
    parser.close()
    return [p.content for p in parts]


@pytest.mark.parametrize("prefix", [b"", b"\r\n", b"a preamble\r\n"])
def test_every_two_way_split(prefix: bytes) -> None:
    data = body(prefix)
    for cut in range(len(data) + 1):
        assert parse([data[:cut], data[cut:]]) == PARTS


def test_byte_by_byte_with_epilogue_and_headers() -> None:
    data = body(suffix=b"\r\nepilogue, ignored")
    parser = MultipartStreamParser(BOUNDARY)
    parts = [p for i in range(len(data)) for p in parser.feed(data[i : i + 1])]
    parser.close()
    assert [p.content for p in parts] == PARTS
    assert [p.headers["x-n"] for p in parts] == ["0", "1", "2"]
    assert parts[0].content_type == "application/dicom"


def test_truncated_and_missing_delimiters_are_errors() -> None:
    data = body()
    with pytest.raises(MultipartError, match="before its closing delimiter"):
        parse([data[: len(data) // 2]])
    with pytest.raises(MultipartError, match="no multipart delimiter"):
        parse([b"no delimiter here at all"])
    with pytest.raises(MultipartError, match="headers exceed"):
        parse([f"--{BOUNDARY}\r\n".encode() + b"X: " + b"a" * 20000])
    with pytest.raises(MultipartError, match="1 to 70"):
        MultipartStreamParser("")


def test_content_type_parameters_quoted_or_not() -> None:
    quoted = parse_content_type('Multipart/Related; type="application/dicom"; boundary="a;b"')
    plain = parse_content_type("multipart/related;type=application/dicom;boundary=xyz")
    assert quoted.media_type == "multipart/related"
    assert quoted.params == {"type": "application/dicom", "boundary": "a;b"}
    assert plain.params == {"type": "application/dicom", "boundary": "xyz"}
