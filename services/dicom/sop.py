"""The DICOM storage SOP classes the node accepts: MR images, classic and multi-frame.

One list for every edge (C-STORE listener, STOW-RS and zip ingest) and for the reader, so a
study the node stores is a study it can read.
"""

from __future__ import annotations

from pydicom.uid import (
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    MediaStorageDirectoryStorage,
    MRImageStorage,
)

MR_IMAGE_STORAGE = MRImageStorage
ENHANCED_MR_IMAGE_STORAGE = EnhancedMRImageStorage
# What PACS and highdicom produce when they convert classic single-frame MR to multi-frame.
LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE = LegacyConvertedEnhancedMRImageStorage
SUPPORTED_SOP_CLASSES = (
    MR_IMAGE_STORAGE,
    ENHANCED_MR_IMAGE_STORAGE,
    LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE,
)
MEDIA_STORAGE_DIRECTORY = MediaStorageDirectoryStorage  # DICOMDIR: an index, not an image
