"""Lesions pasted into a copy of a scan, in every modality at once."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.devtools.paste import paste_lesions

SHAPE = (30, 40, 40)


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((1.0, 1.0, 1.0))
    return image


def _scan(flair_lesion: float, t1_lesion: float) -> tuple[dict[str, sitk.Image], np.ndarray]:
    """A head of white matter (FLAIR 100, T1 200) with one 8x8x8 lesion at its centre."""
    flair = np.zeros(SHAPE)
    t1 = np.zeros(SHAPE)
    flair[2:-2, 2:-2, 2:-2], t1[2:-2, 2:-2, 2:-2] = 100.0, 200.0
    lesion = np.zeros(SHAPE, np.uint8)
    lesion[11:19, 16:24, 16:24] = 1
    flair[lesion > 0], t1[lesion > 0] = flair_lesion, t1_lesion
    return {"FLAIR": _image(flair), "T1": _image(t1)}, lesion


def test_a_lesion_is_pasted_into_every_modality_where_there_was_room() -> None:
    target, _ = _scan(100.0, 200.0)  # no lesion of its own
    donor = _scan(160.0, 140.0)
    room = np.zeros(SHAPE, bool)
    room[5:25, 5:35, 5:20] = True
    pasted = paste_lesions(target, np.zeros(SHAPE, np.uint8), room, [donor], k=1, seed=0)
    assert pasted.count == 1 and int(pasted.mask.sum()) == 512
    assert room[pasted.mask > 0].all()
    flair = sitk.GetArrayFromImage(pasted.flair)
    t1 = sitk.GetArrayFromImage(pasted.images["T1"])
    inside = pasted.mask > 0
    # the donor's contrast, scaled to the target's brain: brighter on FLAIR, darker on T1
    assert np.median(flair[inside]) == pytest.approx(160.0, rel=0.05)
    assert np.median(t1[inside]) == pytest.approx(140.0, rel=0.05)
    # the blend never pushes a voxel the other way, and far from the lesion nothing changes
    assert (flair >= sitk.GetArrayFromImage(target["FLAIR"]) - 1e-3).all()
    assert (t1 <= sitk.GetArrayFromImage(target["T1"]) + 1e-3).all()
    far = np.ones(SHAPE, bool)
    far[np.ix_(*(np.arange(max(s.start - 3, 0), s.stop + 3) for s in _box(inside)))] = False
    assert np.array_equal(flair[far], sitk.GetArrayFromImage(target["FLAIR"])[far])
    assert np.array_equal(t1[far], sitk.GetArrayFromImage(target["T1"])[far])


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    where = np.argwhere(mask)
    return tuple(
        slice(int(lo), int(hi) + 1) for lo, hi in zip(where.min(0), where.max(0), strict=True)
    )


def test_a_donor_must_hold_every_modality_and_the_lesions_must_fit() -> None:
    target, own = _scan(160.0, 140.0)
    donor = _scan(160.0, 140.0)
    room = np.ones(SHAPE, bool)
    with pytest.raises(ValueError, match="lacks"):
        paste_lesions(target, own, room, [({"FLAIR": donor[0]["FLAIR"]}, donor[1])], k=1)
    with pytest.raises(ValueError, match="only 0 of 1"):
        paste_lesions(target, np.ones(SHAPE, np.uint8), room, [donor], k=1)
    with pytest.raises(ValueError, match="need a FLAIR"):
        paste_lesions({"T1": target["T1"]}, own, room, [donor], k=1)
