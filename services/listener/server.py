"""The DICOM listener: a pynetdicom C-ECHO / C-STORE SCP for MR images.

With ``dicom_tls_cert``/``dicom_tls_key`` set the port speaks DICOM over TLS only (see
services/tls.py), optionally requiring client certificates. Association rules: the called AE
title must be the node's; the calling AE title must be on the allow-list when one is
configured; at most ``max_associations`` at once. Only MR storage
SOP classes (and Verification) are negotiated, so anything else is refused at association
time with the presentation context rejected.
"""

from __future__ import annotations

import logging

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, _config, evt
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from mslesion.services.config import Settings
from mslesion.services.dicom.sop import SUPPORTED_SOP_CLASSES
from mslesion.services.listener.handlers import handle_echo, handle_store
from mslesion.services.store.database import Database
from mslesion.services.tls import dicom_server_context

log = logging.getLogger(__name__)

TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)

# A larger receive PDU than pynetdicom's 16 KiB default means fewer PDUs, and fewer passes of
# pynetdicom's Python reactor, per image (measured: ~10-15 % less CPU per 128 KiB instance).
MAX_PDU_BYTES = 256 * 1024

# pynetdicom's own debug logging may print query identifiers; they can hold patient data.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False


class Listener:
    """The node's C-STORE SCP; ``start()`` runs it in background threads."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self._server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        """The TCP port the listener is bound to (raises before ``start()``)."""
        if self._server is None:
            raise RuntimeError("the listener is not running")
        return int(self._server.server_address[1])

    def start(self) -> int:
        """Start accepting associations without blocking; returns the bound port."""
        if self._server is not None:
            return self.port
        spool = self._settings.spool_dir
        spool.mkdir(parents=True, exist_ok=True)
        handlers: list[EventHandlerType] = [
            (evt.EVT_C_ECHO, handle_echo),
            (evt.EVT_C_STORE, handle_store, [self._db, spool]),
            (evt.EVT_ACCEPTED, _log_accepted),
            (evt.EVT_REJECTED, _log_rejected),
        ]
        address = (self._settings.dicom_host, self._settings.dicom_port)
        ssl_context = dicom_server_context(self._settings)
        self._server = build_ae(self._settings).start_server(
            address, block=False, evt_handlers=handlers, ssl_context=ssl_context
        )
        log.info(
            "DICOM listener %s on %s:%d%s",
            self._settings.ae_title,
            address[0],
            self.port,
            " (TLS)" if ssl_context else "",
        )
        return self.port

    def stop(self) -> None:
        """Stop accepting associations and close the listening socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server = None
        log.info("DICOM listener stopped")


def build_ae(settings: Settings) -> AE:
    """The application entity with the node's AE rules and supported contexts."""
    ae = AE(ae_title=settings.ae_title)
    ae.require_called_aet = True
    ae.require_calling_aet = list(settings.allowed_calling_aets)
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = MAX_PDU_BYTES
    for sop_class in SUPPORTED_SOP_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    ae.add_supported_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def _log_accepted(event: Event) -> None:
    log.info("association accepted from %s", _peer(event))


def _log_rejected(event: Event) -> None:
    log.warning("association rejected from %s", _peer(event))


def _peer(event: Event) -> str:
    requestor = event.assoc.requestor
    return f"{str(requestor.ae_title).strip()}@{requestor.address}"
