"""McDonald locations from the template: known anatomy lands in the right zone."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.services.followup.model import Location
from mslesion.services.imaging.regions import (
    REGION_VALUE,
    lesion_locations,
    regions_on,
    template_regions,
)
from mslesion.services.imaging.template import template_t1

# MNI (RAS) millimetres of textbook places, and where a lesion there is counted.
ANATOMY = {
    "cerebellar hemisphere": ((20, -60, -30), Location.INFRATENTORIAL),
    "pons": ((0, -25, -30), Location.INFRATENTORIAL),
    "lateral ventricle body wall": ((-14, 5, 22), Location.PERIVENTRICULAR),
    "frontal horn": ((-14, 18, 12), Location.PERIVENTRICULAR),
    "occipital horn": ((-25, -45, 15), Location.PERIVENTRICULAR),
    "frontal U-fibres": ((-35, 30, 30), Location.JUXTACORTICAL),
    "centrum semiovale": ((25, -10, 35), Location.DEEP_WHITE_MATTER),
}


def _index(image: sitk.Image, mni: tuple[int, int, int]) -> tuple[int, int, int]:
    x, y, z = mni
    i, j, k = image.TransformPhysicalPointToIndex((-x, -y, z))  # RAS -> LPS
    return k, j, i  # array order


@pytest.mark.parametrize("place", sorted(ANATOMY))
def test_a_lesion_at_a_known_place_gets_its_location(place: str) -> None:
    zones = sitk.GetArrayFromImage(template_regions())
    labels = np.zeros(zones.shape, dtype=np.int32)
    k, j, i = _index(template_regions(), ANATOMY[place][0])
    labels[k - 1 : k + 2, j - 1 : j + 2, i - 1 : i + 2] = 7
    assert lesion_locations(labels, zones) == {7: ANATOMY[place][1]}


def test_a_lesion_touching_the_ventricle_zone_is_periventricular_whatever_else_it_reaches() -> None:
    zones = np.full((1, 1, 6), REGION_VALUE[Location.DEEP_WHITE_MATTER], dtype=np.uint8)
    zones[0, 0, 0] = REGION_VALUE[Location.PERIVENTRICULAR]
    zones[0, 0, 5] = REGION_VALUE[Location.JUXTACORTICAL]
    labels = np.array([[[1, 1, 1, 1, 1, 1]]], dtype=np.int32)
    assert lesion_locations(labels, zones) == {1: Location.PERIVENTRICULAR}


def test_zones_follow_the_template_affine_onto_a_study_grid() -> None:
    template = template_t1()
    shift = sitk.TranslationTransform(3, (10.0, 0.0, 0.0))  # template point -> image point
    grid = sitk.Image(template)
    grid.SetOrigin(tuple(np.add(template.GetOrigin(), (10.0, 0.0, 0.0))))
    moved = regions_on(grid, shift)
    assert np.array_equal(moved, sitk.GetArrayFromImage(template_regions()))
    assert lesion_locations(np.zeros((2, 2, 2), dtype=np.int32), moved[:2, :2, :2]) == {}
