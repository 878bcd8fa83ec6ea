"""Training smoke test on small synthetic phantoms: seconds, end to end, fine-tuning too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mslesion.devtools.phantom import write_phantom_dataset
from mslesion.models.onnx_export import load_net_from_onnx
from mslesion.models.training.cascade_train import CascadeTrainConfig
from mslesion.models.training.run import run_training
from mslesion.models.training.trainer import TrainConfig
from mslesion.services.config import Provider
from mslesion.services.imaging.nifti import load_volume
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.manifest import NetRole, Thresholds, load_manifest

SHAPE = (40, 48, 40)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phantoms")
    write_phantom_dataset(root, n_subjects=2, shape=SHAPE, seed=3, n_lesions=8)
    return root


def _config(init: Path | None = None) -> CascadeTrainConfig:
    return CascadeTrainConfig(
        modalities=["flair", "t1"],
        train=TrainConfig(batch_size=64, max_epochs=2, patience=1, seed=1, progress=False),
        max_lesion_voxels=300,
        init=init,
        tile=16,
    )


@pytest.fixture(scope="module")
def trained(phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m"
    run_training(phantoms, out, _config(), Thresholds(l_min=3), name="smoke", version="0.0.1")
    return out


def test_training_exports_a_verified_model(trained: Path) -> None:
    manifest = load_manifest(trained)
    assert manifest.name == "smoke" and manifest.modalities == ["flair", "t1"]
    assert manifest.thresholds.l_min == 3
    assert manifest.training["subjects"] == ["subject01", "subject02"]
    assert manifest.training["seed"] == 1
    assert set(manifest.files) == set(NetRole)
    assert manifest.training["net1_patches"] == 2 * 2 * 300 or manifest.training["net1_patches"] > 0
    # What a bit-for-bit reproduction must match besides data and seed.
    environment = manifest.training["environment"]
    assert environment["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert environment["libraries"]["torch"] == torch.__version__
    assert environment["torch_threads"] == torch.get_num_threads()


def test_trained_model_beats_chance_on_its_phantoms(trained: Path, phantoms: Path) -> None:
    model = CascadeModel(trained, provider=Provider.CPU, tile=16)
    subject = phantoms / "subject01"
    images = {m: load_volume(subject / f"{m.upper()}.nii.gz").data for m in ("flair", "t1")}
    truth = load_volume(subject / "lesion_mask.nii.gz").data > 0
    out = model.predict(images)
    assert out.prob1[truth].mean() > out.prob1[out.candidates & ~truth].mean() + 0.2


def test_training_is_deterministic_for_a_seed(
    phantoms: Path, trained: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    run_training(phantoms, again, _config(), Thresholds(l_min=3), name="smoke", version="0.0.1")
    a, b = load_manifest(trained), load_manifest(again)
    assert a.files[NetRole.NET1_DENSE].sha256 == b.files[NetRole.NET1_DENSE].sha256


def test_fine_tuning_freezes_convolutions(trained: Path, phantoms: Path, tmp_path: Path) -> None:
    tuned = tmp_path / "tuned"
    run_training(
        phantoms,
        tuned,
        _config(init=trained),
        Thresholds(),
        name="tuned",
        version="0.0.2",
        subjects=["subject02"],
    )
    before = load_net_from_onnx(trained / "net1_dense.onnx")
    after = load_net_from_onnx(tuned / "net1_dense.onnx")
    assert torch.equal(before.conv1.weight, after.conv1.weight)
    assert torch.equal(before.bn2.running_var, after.bn2.running_var)
    assert not torch.equal(before.fc1.weight, after.fc1.weight)
    assert load_manifest(tuned).training["fine_tuned_from"] == str(trained)


def test_fine_tuning_refuses_other_modalities(
    trained: Path, phantoms: Path, tmp_path: Path
) -> None:
    from mslesion.services.errors import InputError

    config = CascadeTrainConfig(
        modalities=["flair", "t1", "t2"], init=trained, train=TrainConfig(progress=False)
    )
    with pytest.raises(InputError, match="--init model takes modalities"):
        run_training(phantoms, tmp_path / "x", config, Thresholds(), name="x", version="0")
    assert not (tmp_path / "x").exists()


def test_probabilities_are_probabilities(trained: Path, phantoms: Path) -> None:
    model = CascadeModel(trained, provider=Provider.CPU, tile=16)
    subject = phantoms / "subject02"
    images = {m: load_volume(subject / f"{m.upper()}.nii.gz").data for m in ("flair", "t1")}
    out = model.predict(images)
    assert np.all((out.prob >= 0) & (out.prob <= 1))
    assert np.all(out.prob[~out.flagged] == 0)
