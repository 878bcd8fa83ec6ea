"""The ``mslesion`` command as a user runs it: real processes, real files, exit statuses."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pynetdicom import _config as pynetdicom_config

from mslesion.cli import QUIET_LIBRARIES, configure_logging
from mslesion.devtools.phantom import write_phantom_dataset
from mslesion.services.logpolicy import PINNED_TO_WARNING
from tests.model_factory import random_model

SHAPE = (40, 44, 36)


def mslesion(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mslesion.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def assert_one_error_line(res: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Exit status 2, stderr starts with ``error:``, names ``expected``, has no traceback."""
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for text in expected:
        assert text in res.stderr, res.stderr


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
        "from mslesion.services.segmentation.cascade import CascadeModel\n"
        "from mslesion.services.segmentation.infer import load_inputs, segment_volumes\n"
        f"m = CascadeModel(Path({str(model)!r}))\n"
        f"v = load_inputs({{'flair': Path({str(subject / 'FLAIR.nii.gz')!r}), "
        f"'t1': Path({str(subject / 'T1.nii.gz')!r})}}, m)\n"
        "segment_volumes(v, m)\n"
        "import mslesion.cli\n"
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


# --- the error contract: one `error:` line and exit status 2, never a traceback ---------------


def test_lesion_bank_on_a_missing_folder(tmp_path: Path) -> None:
    res = mslesion("lesion-bank", tmp_path / "nonexistent", "--out", tmp_path / "bank.npz")
    assert_one_error_line(res, "nonexistent", "not a folder")
    assert not (tmp_path / "bank.npz").exists()


def test_infer_with_an_unknown_method_is_a_usage_error(subject: Path, tmp_path: Path) -> None:
    res = mslesion(
        "infer",
        "--flair",
        subject / "FLAIR.nii.gz",
        "--out",
        tmp_path / "m.nii.gz",
        "--method",
        "bogus",
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert all(word in res.stderr for word in ("--method", "'bogus'", "'dense'", "'patch'"))


def test_evaluate_with_unpaired_masks(subject: Path) -> None:
    truth = subject / "lesion_mask.nii.gz"
    res = mslesion("evaluate", "--pred", truth, "--pred", truth, "--truth", truth)
    assert_one_error_line(res, "2 --pred but 1 --truth")


def test_keys_create_twice_with_one_name(tmp_path: Path) -> None:
    env = {"MSLESION_DATA_DIR": str(tmp_path / "node"), "MSLESION_DATABASE_URL": ""}
    assert mslesion("migrate", env=env).returncode == 0
    first = mslesion("keys", "create", "viewer", env=env)
    assert first.returncode == 0, first.stderr
    res = mslesion("keys", "create", "viewer", "--role", "admin", env=env)
    assert_one_error_line(res, "a key named 'viewer' exists already")
    listed = mslesion("keys", "list", env=env)
    assert listed.stdout.count("viewer") == 1 and "viewer\treader" in listed.stdout


def test_invalid_settings_name_the_variable(tmp_path: Path) -> None:
    env = {"MSLESION_DATA_DIR": str(tmp_path / "node"), "MSLESION_JOB_LEASE_S": "60"}
    res = mslesion("migrate", env=env)
    assert_one_error_line(res, "MSLESION_JOB_LEASE_S", "hard time limit")
    assert len(res.stderr.strip().splitlines()) == 1


# --- logging: quiet libraries by default, everything at INFO with --verbose ----------------


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put back the levels and root handlers configure_logging changes."""
    names = ("", "mslesion", *QUIET_LIBRARIES, *PINNED_TO_WARNING)
    levels = {name: logging.getLogger(name).level for name in names}
    handlers = list(logging.getLogger().handlers)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().handlers[:] = handlers


@pytest.mark.usefixtures("restored_logging")
def test_libraries_log_warnings_only_by_default() -> None:
    configure_logging(verbose=False)
    for name in ("pynetdicom", "pynetdicom.assoc", "uvicorn.error", "celery", "alembic"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    assert logging.getLogger("mslesion.worker.runner").isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("restored_logging")
def test_verbose_restores_info_but_never_the_phi_pinned_loggers() -> None:
    configure_logging(verbose=True)
    for name in ("pynetdicom", "pynetdicom.assoc", "uvicorn.error", "celery", "alembic"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.INFO, name
    for name in PINNED_TO_WARNING:  # the no-PHI policy wins over --verbose
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    assert pynetdicom_config.LOG_REQUEST_IDENTIFIERS is False


def test_verbose_is_a_global_option(tmp_path: Path) -> None:
    env = {"MSLESION_DATA_DIR": str(tmp_path / "node"), "MSLESION_DATABASE_URL": ""}
    quiet = mslesion("migrate", env=env)
    assert quiet.returncode == 0 and "alembic" not in quiet.stderr, quiet.stderr
    loud = mslesion("-v", "migrate", env=env)
    assert loud.returncode == 0 and "INFO alembic" in loud.stderr, loud.stderr


def test_train_with_a_lesion_balance_above_one_is_a_usage_error(
    subject: Path, tmp_path: Path
) -> None:
    res = mslesion("train", subject.parent, "--out", tmp_path / "m", "--lesion-balance", "1.5")
    assert res.returncode == 2, res.stderr
    assert "--lesion-balance" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("bad", ["1.8,1.2", "bright", "0,1.5"])
def test_train_with_a_bad_lesion_contrast_is_a_usage_error(
    subject: Path, tmp_path: Path, bad: str
) -> None:
    res = mslesion("train", subject.parent, "--out", tmp_path / "m", "--lesion-flair-contrast", bad)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "--lesion-flair-contrast" in res.stderr and repr(bad) in res.stderr
    assert not (tmp_path / "m").exists()
