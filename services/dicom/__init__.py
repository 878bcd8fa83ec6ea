"""DICOM ingest: read a study (folder or zip), choose its FLAIR/T1/T2 series, assemble volumes.

- :mod:`services.dicom.reader`: :func:`read_study` (headers only) and
  :func:`load_series_volume` (pixels and geometry checks of one series).
- :mod:`services.dicom.selection`: :func:`select_series` with the versioned rules of
  ``series_rules.yaml`` (a site may override them).
- :mod:`services.dicom.writer`: NIfTI → DICOM MR series, for tests and demonstrations.
- :mod:`services.dicom.errors`: :class:`DicomInputError`, :class:`SeriesRulesError`.
"""
