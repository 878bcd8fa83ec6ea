"""TLS for the node's two network faces: the DICOM listener and the HTTP gateway.

Both are off unless a certificate and its key are configured; then the port speaks TLS only
(no plaintext fallback on the same port). TLS 1.2 is the minimum, as in the DICOM BCP 195
profiles. The listener can also require client certificates signed by a configured CA.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

from mslesion.services.config import Settings
from mslesion.services.errors import ConfigError


class TLSConfigError(ConfigError):
    """The TLS settings are incomplete or name files that cannot be used."""


class _HandshakeOnFirstRead(ssl.SSLContext):
    """A server context whose sockets do the TLS handshake on first read, not on accept.

    pynetdicom wraps each accepted socket in the thread that accepts connections; with the
    default handshake-on-accept, one client that connects and stays silent would stall every
    other association. Deferring the handshake moves it into the association's own thread.
    """

    def wrap_socket(  # type: ignore[override]
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=False if server_side else do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )


def dicom_server_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context, or None when DICOM TLS is not configured."""
    pair = _cert_pair(settings.dicom_tls_cert, settings.dicom_tls_key, "MSLESION_DICOM_TLS")
    if pair is None:
        if settings.dicom_tls_ca or settings.dicom_tls_require_client_cert:
            raise TLSConfigError(
                "MSLESION_DICOM_TLS_CA / _REQUIRE_CLIENT_CERT need MSLESION_DICOM_TLS_CERT "
                "and MSLESION_DICOM_TLS_KEY (the listener's own certificate)"
            )
        return None
    if settings.dicom_tls_require_client_cert and settings.dicom_tls_ca is None:
        raise TLSConfigError(
            "MSLESION_DICOM_TLS_REQUIRE_CLIENT_CERT needs MSLESION_DICOM_TLS_CA: the CA "
            "bundle client certificates are checked against"
        )
    context = _HandshakeOnFirstRead(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, *pair, "MSLESION_DICOM_TLS")
    if settings.dicom_tls_ca is not None:
        ca = _readable(settings.dicom_tls_ca, "MSLESION_DICOM_TLS_CA")
        try:
            context.load_verify_locations(cafile=str(ca))
        except ssl.SSLError as exc:
            msg = f"MSLESION_DICOM_TLS_CA {ca} is not a PEM CA bundle: {exc}"
            raise TLSConfigError(msg) from exc
        context.verify_mode = (
            ssl.CERT_REQUIRED if settings.dicom_tls_require_client_cert else ssl.CERT_OPTIONAL
        )
    return context


def http_server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` that turn on HTTPS ({} when not configured)."""
    pair = _cert_pair(settings.http_tls_cert, settings.http_tls_key, "MSLESION_HTTP_TLS")
    if pair is None:
        return {}
    # Load once here so a bad file stops the node with a clear message, not a uvicorn trace.
    _load_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), *pair, "MSLESION_HTTP_TLS")
    return {"ssl_certfile": str(pair[0]), "ssl_keyfile": str(pair[1])}


def http_scheme(settings: Settings) -> str:
    """``https`` when the gateway serves TLS, else ``http``."""
    return "https" if settings.http_tls_cert and settings.http_tls_key else "http"


def _cert_pair(cert: Path | None, key: Path | None, prefix: str) -> tuple[Path, Path] | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing = f"{prefix}_CERT" if cert is None else f"{prefix}_KEY"
        raise TLSConfigError(f"{missing} is not set: TLS needs both a certificate and its key")
    return _readable(cert, f"{prefix}_CERT"), _readable(key, f"{prefix}_KEY")


def _readable(path: Path, setting: str) -> Path:
    if not path.is_file():
        raise TLSConfigError(f"{setting}: {path} is not a readable file")
    return path


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path, prefix: str) -> None:
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(
            f"{prefix}_CERT {cert} / {prefix}_KEY {key} cannot be loaded "
            f"(PEM certificate and matching unencrypted key expected): {exc}"
        ) from exc
