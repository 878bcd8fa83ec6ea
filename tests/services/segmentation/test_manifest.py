"""Serving refuses a model folder whose manifest does not match its ONNX files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mslesion.services.errors import ModelError
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.manifest import load_manifest
from tests.model_factory import random_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return random_model(tmp_path / "model")


def test_valid_folder_loads(model_dir: Path) -> None:
    manifest = load_manifest(model_dir)
    assert manifest.modalities == ["flair", "t1"]
    assert len(manifest.files) == 4
    assert all(len(f.sha256) == 64 for f in manifest.files.values())


def test_modified_onnx_file_is_named(model_dir: Path) -> None:
    target = model_dir / "net2_dense.onnx"
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(ModelError, match=r"net2_dense: net2_dense\.onnx has sha256"):
        CascadeModel(model_dir)


def test_missing_onnx_file_is_named(model_dir: Path) -> None:
    (model_dir / "net1_patch.onnx").unlink()
    with pytest.raises(ModelError, match=r"net1_patch\.onnx is missing"):
        load_manifest(model_dir)


def test_swapped_files_are_detected(model_dir: Path) -> None:
    a, b = model_dir / "net1_dense.onnx", model_dir / "net2_dense.onnx"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(ModelError) as err:
        load_manifest(model_dir)
    assert "net1_dense" in str(err.value) and "net2_dense" in str(err.value)


def test_channel_count_mismatch_is_refused(model_dir: Path) -> None:
    path = model_dir / "manifest.json"
    data = json.loads(path.read_text())
    data["modalities"] = ["flair", "t1", "t2"]
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="takes 2 channels but the manifest lists 3"):
        CascadeModel(model_dir)


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no manifest\.json"):
        load_manifest(tmp_path)


def test_corrupt_manifest(model_dir: Path) -> None:
    (model_dir / "manifest.json").write_text('{"name": 3}')
    with pytest.raises(ModelError, match="invalid manifest"):
        load_manifest(model_dir)
