"""``restrict`` limits the voxels the cascade scores (the serving pipeline's white-matter ROI)."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.services.config import Provider
from mslesion.services.errors import InputError
from mslesion.services.segmentation.cascade import CascadeModel, CascadeOutput, Method
from mslesion.services.segmentation.inputs import prepare_stack
from mslesion.services.segmentation.manifest import Thresholds
from tests.model_factory import random_model

SHAPE = (24, 26, 22)
# Random nets give probabilities near 0.45 (net 1 from 0.43 to 0.47 on these images): this
# net 1 threshold flags about half the candidates, so net 2 has work to restrict too.
NET1_THRESHOLD = 0.455
TOLERANCE = 1e-4


def _images(seed: int) -> dict[str, np.ndarray]:
    """FLAIR + T1 with a zero background slab (outside the brain) and random tissue inside."""
    rng = np.random.default_rng(seed)
    images = {name: rng.uniform(1.0, 100.0, SHAPE).astype(np.float32) for name in ("flair", "t1")}
    for image in images.values():
        image[:3] = 0.0
    return images


def _restriction() -> np.ndarray:
    """A box in one corner of the brain plus one isolated voxel: irregular enough to matter."""
    restrict = np.zeros(SHAPE, dtype=bool)
    restrict[2:14, 5:20, 4:15] = True  # straddles the background slab's edge
    restrict[20, 2, 18] = True
    return restrict


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> CascadeModel:
    folder = random_model(
        tmp_path_factory.mktemp("model") / "random",
        seed=3,
        thresholds=Thresholds(net1=NET1_THRESHOLD),
    )
    return CascadeModel(folder, provider=Provider.CPU, tile=8)


@pytest.fixture(scope="module")
def unrestricted(model: CascadeModel) -> CascadeOutput:
    return model.predict(_images(0))


def test_default_is_unrestricted(model: CascadeModel, unrestricted: CascadeOutput) -> None:
    """``restrict=None`` is the trained rule: same candidates and probabilities as before."""
    again = model.predict(_images(0), restrict=None)
    np.testing.assert_array_equal(again.candidates, unrestricted.candidates)
    np.testing.assert_array_equal(again.prob1, unrestricted.prob1)
    np.testing.assert_array_equal(again.prob, unrestricted.prob)
    # The random nets must leave something to restrict: net 1 flags part of the candidates.
    candidates = int(unrestricted.candidates.sum())
    assert candidates > 1000
    assert 0.1 * candidates < int(unrestricted.flagged.sum()) < 0.9 * candidates


@pytest.mark.parametrize("method", [Method.DENSE, Method.PATCH])
def test_restrict_limits_scored_voxels(
    model: CascadeModel, unrestricted: CascadeOutput, method: Method
) -> None:
    restrict = _restriction()
    assert unrestricted.flagged[~restrict].any()  # else the checks below would prove nothing
    stack, brain = prepare_stack(_images(0), model.manifest.modalities)
    out = model.predict_stack(stack, brain, method, restrict=restrict)
    # Candidates are exactly the unrestricted ones inside the region.
    np.testing.assert_array_equal(out.candidates, unrestricted.candidates & restrict)
    # Nothing outside it is scored by net 1, flagged, or scored by net 2.
    assert np.all(out.prob1[~restrict] == 0)
    assert not out.flagged[~restrict].any()
    assert np.all(out.prob[~restrict] == 0)
    # Inside, scores are unchanged: the nets see the same stack, only fewer voxels are asked
    # (the patch form agrees with the dense one to ~1e-6, see test_dense.py).
    np.testing.assert_allclose(
        out.prob1[out.candidates], unrestricted.prob1[out.candidates], atol=TOLERANCE
    )
    both = out.flagged & unrestricted.flagged
    assert both.sum() > 0
    np.testing.assert_allclose(out.prob[both], unrestricted.prob[both], atol=TOLERANCE)
    np.testing.assert_array_equal(out.brain, brain)  # the brain itself is not restricted


def test_empty_restriction_scores_nothing(model: CascadeModel) -> None:
    out = model.predict(_images(1), restrict=np.zeros(SHAPE, dtype=bool))
    assert not out.candidates.any() and not out.flagged.any()
    assert not out.prob1.any() and not out.prob.any()


@pytest.mark.parametrize(
    ("restrict", "message"),
    [
        (np.ones((4, 4, 4), dtype=bool), r"restrict has shape \(4, 4, 4\)"),
        (np.ones(SHAPE, dtype=np.uint8), "restrict must be a bool mask"),
    ],
)
def test_bad_restriction_is_refused(
    model: CascadeModel, restrict: np.ndarray, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        model.predict(_images(0), restrict=restrict)
