"""The DICOM listener: C-ECHO and C-STORE SCP, and the quiet-study monitor."""

from mslesion.services.listener.monitor import StudyMonitor
from mslesion.services.listener.server import Listener

__all__ = ["Listener", "StudyMonitor"]
