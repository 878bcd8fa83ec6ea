"""The DICOM listener: C-ECHO and C-STORE SCP, and the quiet-study monitor."""

from services.listener.monitor import StudyMonitor
from services.listener.server import Listener

__all__ = ["Listener", "StudyMonitor"]
