"""DICOM ingest: read a study (folder or zip), choose its FLAIR/T1/T2 series, assemble volumes.

One module per concern:

- :mod:`~mslesion.services.dicom.reader`: :func:`read_study` (headers only), the public API.
- :mod:`~mslesion.services.dicom.sources`: files of a folder or a zip;
  :mod:`~mslesion.services.dicom.zipguard` refuses traversal, encrypted members and zip bombs.
- :mod:`~mslesion.services.dicom.headers` and :mod:`~mslesion.services.dicom.attributes`: the
  header pass and the value helpers for classic and Enhanced MR.
- :mod:`~mslesion.services.dicom.grouping`: series grouping and summary, one study per input.
- :mod:`~mslesion.services.dicom.checks`: transfer syntax and series problems.
- :mod:`~mslesion.services.dicom.geometry`: slice stack orientation, spacing, gaps and shear.
- :mod:`~mslesion.services.dicom.pixels`: decoding and assembly of one series' volume.
- :mod:`~mslesion.services.dicom.sop`: the supported SOP classes (also used by ingest).
- :mod:`~mslesion.services.dicom.selection`: :func:`select_series` with the versioned rules of
  ``series_rules.yaml`` (a site may override them).
- :mod:`~mslesion.services.dicom.errors`: :class:`DicomInputError`, :class:`SeriesRulesError`.
"""
