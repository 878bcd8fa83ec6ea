"""Synthetic heads sampled directly on any acquisition grid (no resampling involved)."""

from __future__ import annotations

import numpy as np

# The affine of the failing study (Siemens t2_tirm_tra_dark-fluid, 3 mm slices
# tilted ~16° along the AC-PC line, 0.72 mm pixels), columns (frame, row, column).
TILTED_16 = np.array(
    [
        [-0.065, 0.034, 0.718, 0.0],
        [0.822, 0.691, -0.028, 0.0],
        [2.884, -0.196, 0.024, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
LESION_LPS = np.array([-35.0, -30.0, 25.0])  # the patient's right, anterior, superior
LESION_RADIUS_MM = 7.0
HEAD_RADII_MM = np.array([65.0, 80.0, 65.0])


def centred_grid(columns: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Patient affine with these (frame, row, column) steps, centred on the head."""
    affine = np.eye(4)
    affine[:3, :3] = columns
    affine[:3, 3] = -columns @ ((np.array(shape) - 1) / 2.0)
    return affine


def head_scene(affine: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(image, lesion mask): an ellipsoid head with one bright lesion at :data:`LESION_LPS`."""
    index = np.indices(shape).reshape(3, -1)
    points = (affine[:3, :3] @ index + affine[:3, 3:4]).T
    head = (((points / HEAD_RADII_MM) ** 2).sum(axis=1) <= 1).reshape(shape)
    lesion = (np.linalg.norm(points - LESION_LPS, axis=1) <= LESION_RADIUS_MM).reshape(shape)
    image = np.where(lesion, 300.0, np.where(head, 100.0, 0.0)).astype(np.float32)
    return image, lesion
