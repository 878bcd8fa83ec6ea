"""`mslesion train-change` end to end on phantoms: a change-detector folder serving can load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mslesion.devtools.phantom import write_phantom_dataset
from mslesion.models.training.lesion_bank import LesionBank
from mslesion.services.followup.change_detector import ChangeDetector
from mslesion.services.segmentation.manifest import load_manifest


def test_train_change_writes_a_verified_change_detector(tmp_path: Path) -> None:
    write_phantom_dataset(tmp_path / "data", n_subjects=2, shape=(48, 56, 48), seed=7, n_lesions=4)
    ball = np.sum((np.indices((5, 5, 5)) - 2) ** 2, axis=0) <= 4
    LesionBank(shapes=[ball], rel_centroids=np.full((1, 3), 0.5), patient_of=["x"]).save(
        tmp_path / "bank.npz"
    )
    out = tmp_path / "change"
    res = subprocess.run(
        [
            sys.executable, "-m", "mslesion.cli", "train-change", str(tmp_path / "data"),
            "--out", str(out), "--lesion-bank", str(tmp_path / "bank.npz"),
            "--pairs-per-subject", "2", "--max-epochs", "1", "--batch-size", "64", "--quiet",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "change detector ms-change-flair 0.1.0 written" in res.stdout
    manifest = load_manifest(out, verify=True)
    assert manifest.modalities == ["flair", "prior_flair"]
    assert manifest.normalisation.method.value == "robust"
    assert manifest.normalisation.smoothing_voxels == 0.5
    assert manifest.training["subjects"] == ["subject01", "subject02"]
    assert manifest.training["config"]["pairs_per_subject"] == 2  # type: ignore[index]
    json.dumps(manifest.training)  # the training record is plain JSON
    assert ChangeDetector(out).name == "ms-change-flair 0.1.0"
