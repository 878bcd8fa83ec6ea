"""Provider selection: CPU when asked, CUDA required fails loudly where there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from mslesion.services.config import Provider
from mslesion.services.errors import ProviderError
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.runtime import (
    CPU,
    CUDA,
    available_providers,
    requested_providers,
)
from tests.model_factory import random_model


def test_cpu_when_asked() -> None:
    assert requested_providers(Provider.CPU) == [CPU]


def test_auto_uses_what_the_runtime_offers() -> None:
    chosen = requested_providers(Provider.AUTO)
    if CUDA in available_providers():
        assert chosen[0][0] == CUDA
    else:
        assert chosen == [CPU]


@pytest.mark.skipif(CUDA in available_providers(), reason="this host has the CUDA provider")
def test_required_cuda_missing_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="CUDA was required"):
        CascadeModel(random_model(tmp_path / "m"), provider=Provider.CUDA)


def test_provider_used_is_reported(tmp_path: Path) -> None:
    model = CascadeModel(random_model(tmp_path / "m"), provider=Provider.CPU)
    assert model.provider_used == CPU
