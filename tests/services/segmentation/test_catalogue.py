"""The node picks the richest model a study's series support, and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from mslesion.services.config import SHIPPED_MODELS_DIR
from mslesion.services.errors import InputError, ModelError
from mslesion.services.segmentation.catalogue import ModelSet
from tests.model_factory import random_model

SETS = {"flair": ("flair",), "flair_t1": ("flair", "t1"), "flair_t1_t2": ("flair", "t1", "t2")}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shipped")
    for i, (name, modalities) in enumerate(SETS.items()):
        random_model(root / name, modalities, seed=10 * i)
    return root


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (["flair"], "flair"),
        (["flair", "t1"], "flair_t1"),
        (["FLAIR", "T1", "T2"], "flair_t1_t2"),
        (["flair", "t2"], "flair"),  # no FLAIR+T2 model: T2 alone adds nothing
    ],
)
def test_the_richest_model_the_study_supports_is_chosen(
    catalogue: Path, series: list[str], expected: str
) -> None:
    choice = ModelSet(catalogue).choose(series)
    assert choice.folder.name == expected
    assert set(choice.manifest.modalities) <= {s.lower() for s in series}
    assert "the richest the study supports" in choice.reason


def test_a_model_needing_a_missing_series_is_never_chosen_and_the_reason_says_so(
    catalogue: Path,
) -> None:
    choice = ModelSet(catalogue).choose(["flair"])
    assert choice.manifest.modalities == ["flair"]
    assert "not usable" in choice.reason and "(no T1)" in choice.reason
    assert "(no T1+T2)" in choice.reason


def test_no_model_fits_a_study_without_flair(catalogue: Path) -> None:
    with pytest.raises(InputError, match="no model can analyse a study with T1"):
        ModelSet(catalogue).choose(["t1"])


def test_a_single_model_folder_is_a_catalogue_of_one(catalogue: Path) -> None:
    models = ModelSet(catalogue / "flair_t1")
    assert models.folders == [catalogue / "flair_t1"]
    with pytest.raises(InputError, match="needs FLAIR\\+T1"):
        models.choose(["flair"])


def test_a_folder_without_models_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="neither a model folder nor a folder of model folders"):
        ModelSet(tmp_path)


def test_sessions_are_created_once_per_model(catalogue: Path) -> None:
    models = ModelSet(catalogue)
    first = models.get(catalogue / "flair")
    assert models.get(catalogue / "flair") is first
    assert first.manifest.modalities == ["flair"]


def test_the_shipped_models_cover_every_modality_set_a_study_holds() -> None:
    models = ModelSet(SHIPPED_MODELS_DIR)
    models.verify()  # every shipped file matches its manifest's checksum
    assert models.choose(["flair"]).manifest.modalities == ["flair"]
    assert models.choose(["flair", "t1"]).manifest.modalities == ["flair", "t1"]
    assert models.choose(["flair", "t2"]).manifest.modalities == ["flair"]
    full = models.choose(["flair", "t1", "t2"])
    assert full.manifest.modalities == ["flair", "t1", "t2"]
    assert "ms-cascade-flair-t1-t2" in full.reason and "richest" in full.reason
    for manifest in models.manifests.values():
        assert manifest.needs_wm_prior and manifest.version.startswith("2.")
