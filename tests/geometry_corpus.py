"""The geometry corpus for tests: cases written on first use, once per test session.

Several test packages (dev tools, the pipeline, the node) use the same cases; writing one
takes a few seconds, so a session writes each case at most once, into its own folder.
Tests only read the studies (copy a study before damaging it).
"""

from __future__ import annotations

import threading
from pathlib import Path

from mslesion.devtools.geometry_corpus import CorpusStudy, case, write_case


class LazyCorpus:
    """Geometry corpus cases under ``root``, written from ``shared_data`` when first asked for."""

    def __init__(self, shared_data: Path, root: Path) -> None:
        self.shared_data = shared_data
        self.root = root
        self._written: dict[str, CorpusStudy] = {}
        self._lock = threading.Lock()

    def study(self, name: str) -> CorpusStudy:
        """The written case ``name`` (see :data:`mslesion.devtools.geometry_corpus.CASES`)."""
        with self._lock:
            if name not in self._written:
                self._written[name] = write_case(case(name), self.shared_data, self.root / name)
            return self._written[name]
