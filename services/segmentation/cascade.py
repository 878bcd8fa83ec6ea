"""The cascade rule on ONNX Runtime: net 1 proposes, net 2 removes false positives."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.services.config import Provider
from mslesion.services.errors import InputError, ModelError
from mslesion.services.segmentation import dense, patchwise
from mslesion.services.segmentation.inputs import candidate_mask, prepare_stack
from mslesion.services.segmentation.manifest import Manifest, NetRole, load_manifest
from mslesion.services.segmentation.runtime import create_session, session_provider

log = logging.getLogger(__name__)


class Method(StrEnum):
    """How the nets are evaluated."""

    DENSE = "dense"  # fully-convolutional tiles (sparse tiles patch-wise): serving
    PATCH = "patch"  # the seed method's patch-by-patch scoring: reference and benchmarks


@dataclass
class CascadeOutput:
    """Probabilities and masks of one cascade run on the model's grid."""

    prob1: np.ndarray  # net 1 at candidate voxels
    prob: np.ndarray  # final probability: net 2 at voxels net 1 flagged, 0 elsewhere
    candidates: np.ndarray
    flagged: np.ndarray
    brain: np.ndarray
    timings_s: dict[str, float] = field(default_factory=dict)


class CascadeModel:
    """A verified model folder with ONNX sessions created once and reused."""

    def __init__(
        self,
        folder: Path,
        provider: Provider = Provider.AUTO,
        threads: int = 0,
        device_id: int = 0,
        tile: int = 40,
        tile_batch: int = 1,
        hybrid: bool = True,
    ) -> None:
        self.folder = folder
        self.manifest: Manifest = load_manifest(folder, verify=True)
        self.provider, self.threads, self.device_id = provider, threads, device_id
        self.tile, self.tile_batch = tile, tile_batch
        self.hybrid = hybrid  # score sparse tiles patch-wise (same result, less work)
        self._sessions: dict[NetRole, Any] = {}
        for role in (NetRole.NET1_DENSE, NetRole.NET2_DENSE):
            self._check_channels(role, self.session(role))

    def session(self, role: NetRole) -> Any:
        """The ONNX Runtime session of one net, created on first use."""
        if role not in self._sessions:
            path = self.manifest.file_path(self.folder, role)
            self._sessions[role] = create_session(path, self.provider, self.threads, self.device_id)
        return self._sessions[role]

    @property
    def provider_used(self) -> str:
        """The execution provider the dense sessions actually run on."""
        return session_provider(self.session(NetRole.NET1_DENSE))

    def _check_channels(self, role: NetRole, session: Any) -> None:
        channels = session.get_inputs()[0].shape[1]
        if channels != self.manifest.channels:
            raise ModelError(
                f"{self.folder}: {role.value} takes {channels} channels but the manifest lists "
                f"{self.manifest.channels}: modalities {self.manifest.modalities}"
                + (
                    f", context {[c.value for c in self.manifest.context]}"
                    if self.manifest.context
                    else ""
                )
            )

    def _score(self, net: int, method: Method, stack: np.ndarray, roi: np.ndarray) -> np.ndarray:
        patch_role = NetRole.NET1_PATCH if net == 1 else NetRole.NET2_PATCH
        if method is Method.DENSE:
            role = NetRole.NET1_DENSE if net == 1 else NetRole.NET2_DENSE
            return dense.dense_predict(
                self.session(role),
                stack,
                roi,
                self.tile,
                self.tile_batch,
                patch_session=self.session(patch_role) if self.hybrid else None,
            )
        return patchwise.patchwise_volume(self.session(patch_role), stack, roi)

    def predict_stack(
        self,
        stack: np.ndarray,
        brain: np.ndarray,
        method: Method = Method.DENSE,
        on_stage: Callable[[str], None] | None = None,
        *,
        restrict: np.ndarray | None = None,
    ) -> CascadeOutput:
        """Run the cascade on a normalised (C, X, Y, Z) stack.

        ``restrict`` (bool, the grid of ``brain``), when given, is AND-ed with the candidate
        mask: net 1 scores only candidates inside it, so nothing outside can be flagged by
        net 1, re-scored by net 2 or end up in ``prob``. ``None`` is the trained rule as is.
        """
        th = self.manifest.thresholds
        timings: dict[str, float] = {}
        candidates = candidate_mask(stack, brain, th.candidate_flair_z)
        if restrict is not None:
            candidates = candidates & _restriction(restrict, brain.shape)
        t0 = time.perf_counter()
        if on_stage:
            on_stage("net1")
        prob1 = self._score(1, method, stack, candidates)
        timings["net1_s"] = time.perf_counter() - t0
        flagged = prob1 > th.net1
        t0 = time.perf_counter()
        if on_stage:
            on_stage("net2")
        prob = self._score(2, method, stack, flagged)
        timings["net2_s"] = time.perf_counter() - t0
        log.info(
            "cascade (%s, %s): %d candidates, %d flagged by net 1, %.1f s",
            method.value,
            self.provider_used,
            int(candidates.sum()),
            int(flagged.sum()),
            sum(timings.values()),
        )
        return CascadeOutput(prob1, prob, candidates, flagged, brain, timings)

    def predict(
        self,
        images: Mapping[str, np.ndarray],
        method: Method = Method.DENSE,
        *,
        restrict: np.ndarray | None = None,
        wm_prior: np.ndarray | None = None,
    ) -> CascadeOutput:
        """Validate and standardise ``images`` (modality name → 3D array), then run the cascade.

        ``restrict``: optional region outside which nothing is scored (see
        :meth:`predict_stack`). ``wm_prior``: the registered template white-matter probability
        on the images' grid, required by models standardised on the white-matter peak or
        taking it as a channel.
        """
        stack, brain = self.prepare(images, wm_prior)
        return self.predict_stack(stack, brain, method, restrict=restrict)

    def prepare(
        self, images: Mapping[str, np.ndarray], wm_prior: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's input stack and brain mask, exactly as training built them."""
        m = self.manifest
        return prepare_stack(
            images,
            m.modalities,
            standardisation=m.normalisation.method,
            wm_prior=wm_prior,
            context=m.context,
            smoothing=m.normalisation.smoothing_voxels,
        )


def _restriction(restrict: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``restrict`` as a bool mask of ``shape``; :class:`InputError` when it is not one."""
    mask = np.asarray(restrict)
    if mask.shape != shape:
        raise InputError(f"restrict has shape {mask.shape}, the images {shape}")
    if mask.dtype != bool:
        raise InputError(f"restrict must be a bool mask, got dtype {mask.dtype}")
    return mask
