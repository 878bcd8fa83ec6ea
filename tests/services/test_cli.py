"""The ``mslesion`` command as a user runs it: real processes, real files, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesion.devtools.phantom import write_phantom_dataset
from tests.model_factory import random_model

SHAPE = (40, 44, 36)


def mslesion(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mslesion.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    return write_phantom_dataset(root, n_subjects=1, shape=SHAPE, seed=2)[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_model(tmp_path_factory.mktemp("m") / "model")


def test_infer_writes_outputs_on_the_input_grid(subject: Path, model: Path, tmp_path: Path) -> None:
    out, prob, report = tmp_path / "mask.nii.gz", tmp_path / "prob.nii.gz", tmp_path / "r.json"
    res = mslesion(
        "infer",
        "--flair",
        subject / "FLAIR.nii.gz",
        "--t1",
        subject / "T1.nii.gz",
        "--model",
        model,
        "--out",
        out,
        "--prob",
        prob,
        "--report",
        report,
    )
    assert res.returncode == 0, res.stderr
    ref = nib.load(str(subject / "FLAIR.nii.gz"))
    for path, dtype in ((out, np.uint8), (prob, np.float32)):
        img = nib.load(str(path))
        assert img.shape == ref.shape
        np.testing.assert_array_equal(img.affine, ref.affine)
        assert img.get_data_dtype() == dtype
        assert img.header["qform_code"] == ref.header["qform_code"]
    assert set(np.unique(np.asarray(nib.load(str(out)).dataobj))) <= {0, 1}
    data = json.loads(report.read_text())
    assert data["provider"] == "CPUExecutionProvider" and "lesions" in data
    assert "CPUExecutionProvider" in res.stderr  # the provider actually used is logged


def test_infer_without_required_modality_fails_clearly(
    subject: Path, model: Path, tmp_path: Path
) -> None:
    res = mslesion(
        "infer",
        "--flair",
        subject / "FLAIR.nii.gz",
        "--model",
        model,
        "--out",
        tmp_path / "m.nii.gz",
    )
    assert res.returncode == 2
    assert "missing: t1" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m.nii.gz").exists()


def test_infer_extra_channel_fails_clearly(subject: Path, model: Path, tmp_path: Path) -> None:
    res = mslesion(
        "infer",
        "--flair",
        subject / "FLAIR.nii.gz",
        "--t1",
        subject / "T1.nii.gz",
        "--t2",
        subject / "T2.nii.gz",
        "--model",
        model,
        "--out",
        tmp_path / "m.nii.gz",
    )
    assert res.returncode == 2 and "not used by this model: t2" in res.stderr


def test_infer_mismatched_grids(subject: Path, model: Path, tmp_path: Path) -> None:
    t1 = nib.load(str(subject / "T1.nii.gz"))
    shifted = t1.affine.copy()
    shifted[0, 3] += 3
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj), shifted), str(tmp_path / "T1.nii.gz"))
    res = mslesion(
        "infer",
        "--flair",
        subject / "FLAIR.nii.gz",
        "--t1",
        tmp_path / "T1.nii.gz",
        "--model",
        model,
        "--out",
        tmp_path / "m.nii.gz",
    )
    assert res.returncode == 2 and "different affines" in res.stderr


def test_infer_wrong_spacing(subject: Path, model: Path, tmp_path: Path) -> None:
    for name in ("FLAIR", "T1"):
        img = nib.load(str(subject / f"{name}.nii.gz"))
        aff = img.affine.copy()
        aff[2, 2] = 3.0
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff), str(tmp_path / f"{name}.nii.gz"))
    res = mslesion(
        "infer",
        "--flair",
        tmp_path / "FLAIR.nii.gz",
        "--t1",
        tmp_path / "T1.nii.gz",
        "--model",
        model,
        "--out",
        tmp_path / "m.nii.gz",
    )
    assert res.returncode == 2 and "expects (1.0, 1.0, 1.0) mm" in res.stderr


def test_infer_missing_file(model: Path, tmp_path: Path) -> None:
    res = mslesion(
        "infer",
        "--flair",
        tmp_path / "nope.nii.gz",
        "--t1",
        tmp_path / "x.nii.gz",
        "--model",
        model,
        "--out",
        tmp_path / "m.nii.gz",
    )
    assert res.returncode == 2 and "no such file" in res.stderr


def test_evaluate_prints_table_and_json(subject: Path, tmp_path: Path) -> None:
    truth = subject / "lesion_mask.nii.gz"
    res = mslesion("evaluate", "--pred", truth, "--truth", truth, "--json", tmp_path / "e.json")
    assert res.returncode == 0, res.stderr
    assert "MEAN" in res.stdout
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["cases"][0]["dice"] == 1.0


def test_serving_does_not_import_torch(subject: Path, model: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from services.segmentation.cascade import CascadeModel\n"
        "from services.segmentation.infer import load_inputs, segment_volumes\n"
        f"m = CascadeModel(Path({str(model)!r}))\n"
        f"v = load_inputs({{'flair': Path({str(subject / 'FLAIR.nii.gz')!r}), "
        f"'t1': Path({str(subject / 'T1.nii.gz')!r})}}, m)\n"
        "segment_volumes(v, m)\n"
        "import services.cli\n"
        "assert 'torch' not in sys.modules, 'serving imported torch'\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_segment_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    (study / "notes.txt").write_text("not DICOM")
    res = mslesion("segment", study, "--out", tmp_path / "out")
    assert res.returncode == 2, res.stderr
    assert "error:" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()
