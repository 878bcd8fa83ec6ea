"""The import contract: one namespace, layers that import downward only, serving without torch.

Layers, top to bottom (an arrow is "may import"):

    mslesion.{cli,node,demo}   the composition root          -> everything below
    mslesion.devtools          phantom, DICOM writer, metrics -> models, services
    mslesion.api | .worker     the edges (meet at Dispatcher) -> services
    mslesion.models            training and export (torch)    -> services
    mslesion.services          application, engines, store    -> services only

Serving (services, api, worker) never imports torch, onnx, mslesion.models or
mslesion.devtools, not even inside a function.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = {  # import prefix -> real folder in the checkout
    "mslesion.services": REPO / "services",
    "mslesion.api": REPO / "api",
    "mslesion.worker": REPO / "worker",
    "mslesion.models": REPO / "models",
    "mslesion.devtools": REPO / "mslesion" / "devtools",
}
ROOT_MODULES = ("mslesion.cli", "mslesion.node", "mslesion.demo", "mslesion")
ALLOWED = {
    "mslesion.services": {"mslesion.services"},
    "mslesion.api": {"mslesion.api", "mslesion.services"},
    "mslesion.worker": {"mslesion.worker", "mslesion.services"},
    "mslesion.models": {"mslesion.models", "mslesion.services"},
    "mslesion.devtools": {"mslesion.devtools", "mslesion.models", "mslesion.services"},
}
SERVING = ("mslesion.services", "mslesion.api", "mslesion.worker")
FORBIDDEN_IN_SERVING = ("torch", "onnx")  # onnxruntime is fine; `onnx` is the training exporter
OLD_TOP_LEVEL = ("services", "api", "worker", "models")  # benchmarks/ runs from a checkout


def _layer(module: str) -> str | None:
    for prefix in PACKAGE_FOLDERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def imports_of(source: str) -> Iterator[str]:
    """Every absolute module a source file imports, at any nesting level."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def violations(importer: str, imported: str) -> list[str]:
    """The rules that ``importer`` importing ``imported`` breaks (empty when it is allowed)."""
    found = []
    layer = _layer(importer)
    top = imported.split(".")[0]
    if top in OLD_TOP_LEVEL and not imported.startswith("mslesion"):
        found.append(f"{importer} imports {imported}: use the mslesion.* namespace")
    if layer is None:
        return found
    if imported.startswith("mslesion"):
        target = _layer(imported)
        if target is None or target not in ALLOWED[layer]:
            found.append(f"{importer} ({layer}) imports {imported}, a layer above or beside it")
    if layer in SERVING and top in FORBIDDEN_IN_SERVING:
        found.append(f"{importer} is serving code and imports {imported}")
    return found


def _source_files() -> Iterator[tuple[str, Path]]:
    for prefix, folder in PACKAGE_FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((prefix, *parts)), path


def test_the_contract_checker_catches_each_kind_of_breach() -> None:
    assert violations("mslesion.services.pipeline", "mslesion.api.main")
    assert violations("mslesion.services.pipeline", "mslesion.devtools.phantom")
    assert violations("mslesion.services.cli_like", "mslesion.cli")
    assert violations("mslesion.api.routes.jobs", "mslesion.worker.runner")
    assert violations("mslesion.worker.runner", "torch")
    assert violations("mslesion.services.segmentation.runtime", "torch.nn")
    assert violations("mslesion.models.package", "mslesion.devtools.metrics")
    assert violations("tests.anything", "services.config")
    assert list(imports_of("def f():\n    import torch\n")) == ["torch"]
    assert not violations("mslesion.devtools.phantom", "mslesion.services.segmentation.lesions")
    assert not violations("mslesion.api.main", "mslesion.services.config")


def test_every_package_imports_downward_only() -> None:
    files = list(_source_files())
    assert len(files) > 80, "the source folders were not found"
    broken = [
        problem
        for module, path in files
        for imported in imports_of(path.read_text())
        for problem in violations(module, imported)
    ]
    assert broken == []


def _other_python_files() -> Iterator[Path]:
    """Files outside the layered folders: root modules, tests, benchmarks, scripts, migrations."""
    yield from sorted((REPO / "mslesion").glob("*.py"))
    for name in ("tests", "benchmarks", "scripts", "alembic"):
        yield from sorted((REPO / name).rglob("*.py"))


def test_no_code_uses_the_old_top_level_names() -> None:
    broken = [
        f"{path.relative_to(REPO)}: {problem}"
        for path in _other_python_files()
        for imported in imports_of(path.read_text())
        for problem in violations("tests.file", imported)
    ]
    assert broken == []


@pytest.mark.parametrize(
    "entry",
    [
        "mslesion.api.main",
        "mslesion.worker.tasks",
        "mslesion.worker.runner",
        "mslesion.services.pipeline",
        "mslesion.services.listener.server",
    ],
)
def test_serving_entry_points_load_neither_torch_nor_devtools(entry: str) -> None:
    code = (
        f"import sys, importlib; importlib.import_module({entry!r}); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx') "
        "or m.startswith(('mslesion.devtools', 'mslesion.models'))); print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_wheel_holds_one_namespace_with_its_migrations_and_models(tmp_path: Path) -> None:
    had_build = (REPO / "build").exists()  # setuptools builds in the checkout's build/
    try:
        _build_wheel(tmp_path)
    finally:
        if not had_build:
            shutil.rmtree(REPO / "build", ignore_errors=True)
    (wheel,) = tmp_path.glob("mslesion-*.whl")
    _check_wheel(wheel)


def _build_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def _check_wheel(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"mslesion"}
    for needed in (
        "mslesion/cli.py",
        "mslesion/services/pipeline.py",
        "mslesion/migrations/env.py",
        "mslesion/migrations/script.py.mako",
        "mslesion/migrations/versions/0001_initial.py",
        "mslesion/models/shipped/flair/manifest.json",
        "mslesion/models/shipped/flair_t1/manifest.json",
        "mslesion/models/shipped/flair_t1_t2/manifest.json",
        "mslesion/models/shipped/flair_t1_t2/net2_dense.onnx",
        "mslesion/services/dicom/series_rules.yaml",
    ):
        assert needed in names
