"""The change detector: where is there new or enlarging lesion tissue, read from both visits.

Two single-study segmentations compared lesion by lesion miss what neither calls a lesion:
a small, faint new lesion, or the rim by which a lesion grew. The detector reads the two
FLAIRs side by side instead: a cascade model folder (same nets and manifest as the lesion
models, :mod:`mslesion.models.training.change_train`) whose channels are the current FLAIR and
the prior FLAIR registered onto it, and whose lesion class is *new or enlarging tissue*.

Both visits are brought onto one 1 mm grid, axis-aligned and oriented as the training grid
(LAS), covering the current brain; each is bias-corrected (N4) inside the brain both cover,
as training scans are by ``mslesion prepare``; the model's manifest then says how the stack is
standardised. The probability comes back on the current FLAIR's own grid.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from mslesion.services.config import Provider, Settings
from mslesion.services.errors import ModelError
from mslesion.services.imaging.bias import n4_correct
from mslesion.services.imaging.preprocess import MIN_BRAIN_VALUE, MODEL_GRID_INTERPOLATOR
from mslesion.services.segmentation.cascade import CascadeModel

log = logging.getLogger(__name__)

CHANGE_MODALITIES = ["flair", "prior_flair"]
GRID_MM = 1.0
MARGIN_MM = 8.0
REGION_MARGIN = 2  # voxels of the 1 mm grid read around a given region


@dataclass
class ChangeMap:
    """The detector's reading of one pair, on the current FLAIR's grid (array order)."""

    probability: np.ndarray  # float32 in [0, 1]
    model: str
    timings_s: dict[str, float] = field(default_factory=dict)


class ChangeDetector:
    """A verified change-detector model folder, sessions created once."""

    def __init__(self, folder: Path, provider: Provider = Provider.AUTO, threads: int = 0) -> None:
        self.model = CascadeModel(folder, provider, threads)
        manifest = self.model.manifest
        if [m.lower() for m in manifest.modalities] != CHANGE_MODALITIES:
            raise ModelError(
                f"{folder}: not a change detector (inputs {manifest.modalities}, "
                f"a change detector takes {CHANGE_MODALITIES})"
            )
        self.name = f"{manifest.name} {manifest.version}"

    @property
    def t_bin(self) -> float:
        """The probability above which a voxel is read as new or enlarging tissue."""
        return self.model.manifest.thresholds.t_bin

    def read(
        self,
        current_flair: sitk.Image,
        current_brain: np.ndarray,
        prior_flair: sitk.Image,
        prior_brain: np.ndarray,
        to_prior: sitk.Transform,
        region: np.ndarray | None = None,
    ) -> ChangeMap:
        """Change probability on the current grid. ``to_prior``: current points → prior points.

        ``region`` (bool, current grid), when given, limits the reading to it (and a voxel
        around it): where the comparison will look, e.g. the current visit's lesions.
        """
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        grid = _grid(current_flair, current_brain)
        current = _resample(current_flair, grid, sitk.Transform(), MODEL_GRID_INTERPOLATOR)
        prior = _resample(prior_flair, grid, to_prior, MODEL_GRID_INTERPOLATOR)
        brain = _mask_on(current_brain, current_flair, grid, sitk.Transform()) & _mask_on(
            prior_brain, prior_flair, grid, to_prior
        )
        timings["resample"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        mask = _image(brain.astype(np.uint8), grid)
        images = {
            "flair": _training_order(_inside(n4_correct(current, mask), brain)),
            "prior_flair": _training_order(_inside(n4_correct(prior, mask), brain)),
        }
        timings["bias"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        restrict = None
        if region is not None:
            near = _mask_on(region, current_flair, grid, sitk.Transform(), at_least=0.25)
            restrict = _training_order(ndimage.binary_dilation(near, iterations=REGION_MARGIN))
        output = self.model.predict(images, restrict=restrict)
        timings["detect"] = round(time.perf_counter() - t0, 3)
        on_grid = _image(_from_training_order(output.prob), grid)
        back = sitk.Resample(on_grid, current_flair, sitk.Transform(), sitk.sitkLinear, 0.0)
        probability = np.clip(sitk.GetArrayFromImage(back), 0.0, 1.0).astype(np.float32)
        log.info(
            "change detector %s: %d voxels ≥ %.2f on the current grid (%s)",
            self.name,
            int((probability >= self.t_bin).sum()),
            self.t_bin,
            ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()),
        )
        return ChangeMap(probability, self.name, timings)


def _grid(flair: sitk.Image, brain: np.ndarray) -> sitk.Image:
    """A 1 mm axis-aligned grid around the brain's bounding box (with a margin)."""
    idx = np.argwhere(brain)
    if idx.size == 0:
        raise ModelError("the current study has an empty brain mask: no change to read")
    lo, hi = idx.min(axis=0)[::-1], idx.max(axis=0)[::-1]  # (x, y, z) index order
    corners = np.array(
        [
            flair.TransformContinuousIndexToPhysicalPoint([float(v) for v in c])
            for c in itertools.product(*zip(lo, hi, strict=True))
        ]
    )
    start = corners.min(axis=0) - MARGIN_MM
    size = np.ceil((corners.max(axis=0) + MARGIN_MM - start) / GRID_MM).astype(int) + 1
    grid = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    grid.SetOrigin(tuple(float(v) for v in start))
    grid.SetSpacing((GRID_MM,) * 3)
    return grid


def _image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def _resample(
    image: sitk.Image, grid: sitk.Image, transform: sitk.Transform, interpolator: int
) -> sitk.Image:
    return sitk.Resample(image, grid, transform, interpolator, 0.0, sitk.sitkFloat32)


def _mask_on(
    mask: np.ndarray,
    like: sitk.Image,
    grid: sitk.Image,
    transform: sitk.Transform,
    at_least: float = 0.5,
) -> np.ndarray:
    """A mask of ``like``'s grid pulled onto ``grid`` (kept where ``at_least`` of it is inside)."""
    pulled = _resample(_image(mask.astype(np.float32), like), grid, transform, sitk.sitkLinear)
    return sitk.GetArrayFromImage(pulled) >= at_least


def _inside(image: sitk.Image, brain: np.ndarray) -> np.ndarray:
    """The image's array inside ``brain`` (at least the serving floor), exactly 0 outside."""
    array = sitk.GetArrayFromImage(image)
    return np.where(brain, np.maximum(array, MIN_BRAIN_VALUE), 0.0).astype(np.float32)


def _training_order(array: np.ndarray) -> np.ndarray:
    """(z, y, x) LPS array → (x, y, z) LAS, the axis order and directions of the training grid."""
    return np.ascontiguousarray(array.transpose(2, 1, 0)[:, ::-1, :])


def _from_training_order(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array[:, ::-1, :].transpose(2, 1, 0)).astype(np.float32)


def load_change_detector(settings: Settings) -> ChangeDetector | None:
    """The configured change detector, or None when follow-up reading is set to go without.

    Loaded once per process and folder (its ONNX sessions are reused, as a worker's models).

    Raises:
        ModelError: the configured folder is missing or not a verified change detector.
    """
    folder = check_change_detector(settings)
    if folder is None:
        return None
    return _loaded(folder.resolve(), settings.provider, settings.intra_op_threads)


def check_change_detector(settings: Settings) -> Path | None:
    """The configured detector's folder (None: turned off), checked without loading it.

    Raises:
        ModelError: the folder holds no model manifest.
    """
    folder = settings.followup_change_detector
    if folder is not None and not (folder / "manifest.json").is_file():
        raise ModelError(
            f"no change detector in {folder} (MSLESION_FOLLOWUP_CHANGE_DETECTOR: a model folder, "
            "or 'none' to read change from lesion volumes only)"
        )
    return folder


@functools.lru_cache(maxsize=4)
def _loaded(folder: Path, provider: Provider, threads: int) -> ChangeDetector:
    return ChangeDetector(folder, provider, threads)
