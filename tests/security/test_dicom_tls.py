"""DICOM over TLS: the listener with a certificate speaks TLS only, and can demand client
certificates signed by the configured CA (pynetdicom and dcmtk clients)."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage, Verification  # type: ignore[attr-defined]

from mslesion.services.config import Settings
from mslesion.services.listener import Listener
from mslesion.services.store.database import Database
from mslesion.services.store.repositories import studies
from mslesion.services.tls import TLSConfigError, dicom_server_context
from tests.dicom_tools import require_tool
from tests.security.pki import Pki
from tests.services.listener.instances import instance, write_series


def _settings(node_settings: Settings, pki: Pki, *, require_client_cert: bool) -> Settings:
    return node_settings.model_copy(
        update={
            "dicom_tls_cert": pki.server_cert,
            "dicom_tls_key": pki.server_key,
            "dicom_tls_ca": pki.ca,
            "dicom_tls_require_client_cert": require_client_cert,
        }
    )


@pytest.fixture
def tls_listener(node_settings: Settings, node_db: Database, pki: Pki) -> Iterator[Listener]:
    """A listener speaking TLS that accepts clients with or without a certificate."""
    server = Listener(_settings(node_settings, pki, require_client_cert=False), node_db)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mtls_listener(node_settings: Settings, node_db: Database, pki: Pki) -> Iterator[Listener]:
    """A listener speaking TLS that demands a client certificate from the test CA."""
    server = Listener(_settings(node_settings, pki, require_client_cert=True), node_db)
    server.start()
    yield server
    server.stop()


def _scu() -> AE:
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(Verification)
    ae.add_requested_context(MRImageStorage)
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 10
    return ae


def _echo(port: int, context: ssl.SSLContext | None) -> bool:
    tls_args = (context, "localhost") if context else None
    assoc = _scu().associate("127.0.0.1", port, ae_title="MSLESION", tls_args=tls_args)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0x0000


def _store(port: int, context: ssl.SSLContext, ds: Dataset) -> int | None:
    assoc = _scu().associate(
        "127.0.0.1", port, ae_title="MSLESION", tls_args=(context, "localhost")
    )
    if not assoc.is_established:
        return None
    status = assoc.send_c_store(ds)
    assoc.release()
    return int(status.Status) if status else None


def test_tls_association_stores_an_instance(
    tls_listener: Listener, node_db: Database, pki: Pki
) -> None:
    ds = instance(generate_uid(), generate_uid(), 1)
    assert _store(tls_listener.port, pki.client_context(with_cert=False), ds) == 0x0000
    with node_db.session() as session:
        study = studies.get_study(session, ds.StudyInstanceUID)
        assert study is not None


def test_plain_association_to_the_tls_port_fails(tls_listener: Listener, pki: Pki) -> None:
    assert not _echo(tls_listener.port, None)
    # ...and the listener still serves TLS clients afterwards.
    assert _echo(tls_listener.port, pki.client_context())


def test_client_that_does_not_trust_the_node_refuses_it(tls_listener: Listener) -> None:
    untrusting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # system CAs only
    assert not _echo(tls_listener.port, untrusting)


def test_a_silent_connection_does_not_stall_other_associations(
    tls_listener: Listener, pki: Pki
) -> None:
    with socket.create_connection(("127.0.0.1", tls_listener.port)):
        # The silent peer holds its connection open (no TLS hello) while another associates.
        assert _echo(tls_listener.port, pki.client_context())


def test_client_certificate_required(mtls_listener: Listener, pki: Pki) -> None:
    port = mtls_listener.port
    assert _echo(port, pki.client_context(with_cert=True))
    assert not _echo(port, pki.client_context(with_cert=False))
    assert not _echo(port, pki.client_context(rogue=True))


def _storescu_tls(port: int, files: list[Path], tls: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [require_tool("storescu"), "-aet", "MODALITY1", "-aec", "MSLESION", *tls]
    return subprocess.run(
        [*cmd, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dcmtk_storescu_over_tls(
    mtls_listener: Listener, node_db: Database, pki: Pki, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "series", 3)
    with_cert = ["+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca)]
    sent = _storescu_tls(mtls_listener.port, files, with_cert)
    assert sent.returncode == 0, sent.stderr
    without_cert = ["+tla", "+cf", str(pki.ca)]
    refused = _storescu_tls(mtls_listener.port, files[:1], without_cert)
    assert refused.returncode != 0
    plain = _storescu_tls(mtls_listener.port, files[:1], [])
    assert plain.returncode != 0


def test_incomplete_tls_settings_are_refused(node_settings: Settings, pki: Pki) -> None:
    with pytest.raises(TLSConfigError, match="MSLESION_DICOM_TLS_KEY"):
        dicom_server_context(node_settings.model_copy(update={"dicom_tls_cert": pki.server_cert}))
    with pytest.raises(TLSConfigError, match="MSLESION_DICOM_TLS_CA"):
        dicom_server_context(
            _settings(node_settings, pki, require_client_cert=True).model_copy(
                update={"dicom_tls_ca": None}
            )
        )
    with pytest.raises(TLSConfigError, match="cannot be loaded"):
        dicom_server_context(
            node_settings.model_copy(
                update={"dicom_tls_cert": pki.server_cert, "dicom_tls_key": pki.client_key}
            )
        )
