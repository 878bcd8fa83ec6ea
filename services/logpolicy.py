"""The node's logging policy: no patient data in any log line, at any level.

No name, ID, birth date or accession is logged, whatever level an operator turns logging up to.

Third-party libraries that would print patient data at DEBUG or INFO are pinned here:

- SQLAlchemy's engine echo prints bound parameters and result rows (patient IDs, dates);
- httpx/httpcore print request URLs, and lesion-load URLs carry a patient ID;
- pynetdicom prints C-FIND/C-MOVE identifiers unless told not to (its per-PDU and C-STORE
  debug lines carry UIDs and AE titles only, and stay available for troubleshooting);
- uvicorn's access log (off in mslesion/node.py) would print paths with patient IDs: should a
  logging configuration turn it back on, a filter replaces the patient ID and query string.
"""

from __future__ import annotations

import logging
import re

from pynetdicom import _config as pynetdicom_config

PINNED_TO_WARNING = (
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "sqlalchemy.orm",
    "httpx",
    "httpcore",
    "highdicom",
)
_PATIENT_SEGMENT = re.compile(r"(/patients/)[^/?]+")


def redact_path(path: str) -> str:
    """``/api/v1/patients/P1/lesion-load?x=1`` → ``/api/v1/patients/…/lesion-load``."""
    return _PATIENT_SEGMENT.sub(r"\1…", path.split("?", 1)[0])


class RedactAccessLog(logging.Filter):
    """Rewrites uvicorn access records (client, method, path, version, status) to drop PHI."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's path argument in place; every record is kept."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def apply_log_policy() -> None:
    """Pin the loggers that would print patient data; idempotent."""
    for name in PINNED_TO_WARNING:
        logging.getLogger(name).setLevel(logging.WARNING)
    pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
    pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())
