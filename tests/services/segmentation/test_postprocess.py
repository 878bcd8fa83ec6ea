"""Threshold, minimum lesion size, per-lesion volumes and centroids."""

from __future__ import annotations

import numpy as np

from mslesion.services.segmentation.postprocess import binarise, describe_lesions


def test_binarise_threshold_and_lmin() -> None:
    prob = np.zeros((20, 20, 20), np.float32)
    prob[2:5, 2:5, 2:5] = 0.9  # 27 voxels: kept
    prob[10:12, 10:12, 10:12] = 0.9  # 8 voxels: below l_min=10
    prob[15:18, 15:18, 15:18] = 0.5  # at threshold: not above it
    mask = binarise(prob, t_bin=0.5, l_min=10)
    assert mask.dtype == np.uint8
    assert int(mask.sum()) == 27
    assert mask[3, 3, 3] == 1 and mask[10, 10, 10] == 0 and mask[16, 16, 16] == 0


def test_diagonal_voxels_are_one_lesion() -> None:
    """26-connectivity: voxels touching only at a corner form one lesion."""
    prob = np.zeros((10, 10, 10), np.float32)
    for i in range(6):
        prob[i, i, i] = 1.0
    assert int(binarise(prob, 0.5, 6).sum()) == 6
    assert int(binarise(prob, 0.5, 7).sum()) == 0


def test_describe_volumes_and_world_centroids() -> None:
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[2:4, 2:4, 2:4] = 1  # 8 voxels, centroid (2.5, 2.5, 2.5)
    mask[10:15, 10:12, 10:11] = 1  # 10 voxels, centroid (12, 10.5, 10)
    prob = mask * 0.8
    prob[12, 10, 10] = 0.95
    affine = np.diag([-2.0, 1.0, 1.5, 1.0])
    affine[:3, 3] = [100, -50, 10]
    report = describe_lesions(mask, prob.astype(np.float32), affine)
    assert report.lesion_count == 2
    voxel_ml = 2 * 1 * 1.5 / 1000
    assert abs(report.total_volume_ml - 18 * voxel_ml) < 1e-9
    largest = report.lesions[0]
    assert largest.voxels == 10
    assert np.allclose(largest.centroid_voxel, (12, 10.5, 10))
    assert np.allclose(largest.centroid_mm, (100 - 24, -50 + 10.5, 10 + 15))
    assert abs(largest.max_probability - 0.95) < 1e-6


def test_describe_empty() -> None:
    report = describe_lesions(np.zeros((5, 5, 5), np.uint8), np.zeros((5, 5, 5)), np.eye(4))
    assert report.lesion_count == 0 and report.total_volume_ml == 0 and report.lesions == []


def test_native_minimum_size_is_a_volume() -> None:
    """l_min of 10 model voxels (1 mm³ each) = 0.01 ml: 5 voxels of 2 mm³ on a native grid."""
    from mslesion.services.pipeline import binarise_native

    prob = np.zeros((10, 10, 10), np.float32)
    prob[1, 1, 1:6] = 0.9  # 5 voxels × 2 mm³ = 10 mm³: kept
    prob[7, 7, 1:5] = 0.9  # 4 voxels × 2 mm³ = 8 mm³: dropped
    mask = binarise_native(prob, t_bin=0.5, l_min_ml=0.010, voxel_ml=0.002, l_min_voxels=1)
    assert int(mask.sum()) == 5 and mask[1, 1, 3] == 1 and mask[7, 7, 2] == 0


def test_native_minimum_size_counts_acquired_voxels_too() -> None:
    """On a 2D stack of 0.9 x 0.9 x 6.5 mm (5.3 mm³ voxels) 10 voxels are 0.053 ml, not 0.01."""
    from mslesion.services.pipeline import binarise_native

    prob = np.zeros((10, 12, 12), np.float32)
    prob[1, 1, 0:10] = 0.9  # 10 acquired voxels: kept
    prob[6, 6, 0:9] = 0.9  # 9 voxels, 0.048 ml: far above 0.01 ml, yet dropped
    mask = binarise_native(prob, t_bin=0.5, l_min_ml=0.010, voxel_ml=0.0053, l_min_voxels=10)
    assert int(mask.sum()) == 10 and mask[1, 1, 5] == 1 and mask[6, 6, 4] == 0
