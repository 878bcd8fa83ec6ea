"""Raw clinical scans → the model's input space (FSL MNI152 1 mm grid), and back.

The model was trained on skull-stripped, N4-corrected images placed *rigidly* in MNI space:
brains keep their native size there (lesion and brain volumes in the training NIfTIs equal
those in the patients' native scans). So the model grid is reached by the rotation and
translation of the FLAIR-to-template affine, not by its scaling; the full affine is used
only to carry the template's brain mask onto the subject.

Stages (each timed in :attr:`Preprocessed.timings_s`):

1. ``register_t1`` / ``register_t2``: rigid T1/T2 → FLAIR (same session);
2. ``register_template``: affine FLAIR → ICBM152 template;
3. ``resample``: every series onto the model grid, in one interpolation each;
4. ``bias_flair``: N4 of the FLAIR inside the template prior;
5. ``brain``: brain extraction refined on the corrected FLAIR;
6. ``bias_t1`` / ``bias_t2``: N4 of T1/T2 inside the brain;
7. ``output``: arrays in nibabel's (x, y, z) order, background exactly 0;
8. ``wm_prior``: the template's white-matter probability on the model grid.

The FLAIR defines the native space: :meth:`Preprocessed.to_native` maps model-grid maps
(lesion probabilities, labels) back onto the FLAIR's own grid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk

from mslesion.services.errors import InputError
from mslesion.services.imaging import bias, brain, registration, template

Interpolator = Literal["linear", "nearest"]
SERIES = ("flair", "t1", "t2")
MIN_AXIS_VOXELS = 8  # fewer along any axis is a localiser or a single slice, not a volume
# Resampling fill value: marks model-grid voxels a series does not cover. Far below anything
# the cubic B-spline's undershoot can give, so it never reads as an intensity.
OUTSIDE = -1e30
# Each series reaches the model grid in one interpolation, cubic B-spline: linear
# interpolation low-passes by an amount that depends on how the acquisition grid falls on the
# model grid (none on a shared grid, a [1/2, 1/2] blur half a voxel off), and the nets are
# sensitive to that blur. Measured on patient26 re-sliced 20° (model-grid lesion voxels):
# linear +37 % against the scan's own grid, B-spline +8 %; on 5 insights-ms clinical scans
# B-spline raised Dice by 0.06-0.09 each and cut the over-segmentation by about a fifth.
# Order 5 (2026-12-07, geometry corpus against the scan's own grid): sagittal 3D -5.2 % vs
# -6.1 %, tilted 20° +1.9 % vs -6.3 %, 3 mm tilted -13.2 % vs -16.2 %, but 2.3x the resampling
# time (+1.7 s per series) and a grid the shipped models were not trained on: not adopted.
# What remains of that dependence is removed on the model's side: ms-cascade-flair-t1 2.1.0
# smooths its inputs (σ 0.5 voxel, services/segmentation/inputs.py) and agrees within 2.7 %.
MODEL_GRID_INTERPOLATOR = sitk.sitkBSpline
# Every brain voxel of the FLAIR must be non-zero: downstream, the brain is ``flair != 0``.
MIN_BRAIN_VALUE = 1e-3
MIN_COVERAGE = 0.5  # fraction of the brain a T1/T2 must cover
_INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


@dataclass(frozen=True)
class NativeGrid:
    """Geometry of the native FLAIR (ITK/LPS): what model-grid maps are resampled onto."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> NativeGrid:
        """The grid of ``image``."""
        return cls(
            tuple(image.GetSize()),
            tuple(image.GetSpacing()),
            tuple(image.GetOrigin()),
            tuple(image.GetDirection()),
        )

    def resample(
        self, image: sitk.Image, transform: sitk.Transform, interpolator: int, pixel: int
    ) -> sitk.Image:
        """``image`` resampled onto this grid; ``transform`` maps this grid's points into it."""
        resampler = sitk.ResampleImageFilter()
        resampler.SetSize([int(n) for n in self.size])
        resampler.SetOutputSpacing(self.spacing)
        resampler.SetOutputOrigin(self.origin)
        resampler.SetOutputDirection(self.direction)
        resampler.SetTransform(transform)
        resampler.SetInterpolator(interpolator)
        resampler.SetDefaultPixelValue(0)
        resampler.SetOutputPixelType(pixel)
        return resampler.Execute(image)


@dataclass(frozen=True)
class StudyTransforms:
    """Physical-space maps of one study (ITK convention: output/fixed points → input points)."""

    model_to_flair: sitk.AffineTransform  # rigid: model grid → native FLAIR
    template_to_flair: sitk.AffineTransform  # affine: ICBM152 template → native FLAIR
    flair_to_series: dict[str, sitk.AffineTransform] = field(default_factory=dict)  # t1, t2


@dataclass
class Preprocessed:
    """A study on the model grid, with what is needed to map results back to the FLAIR."""

    images: dict[str, np.ndarray]  # 'flair', 't1', 't2' present; float32 (x, y, z), LAS
    brain: np.ndarray  # bool, model grid
    model_affine: np.ndarray  # NIfTI (RAS) affine of the model grid
    timings_s: dict[str, float]
    transforms: StudyTransforms
    native_grid: NativeGrid
    # Fraction of brain voxels each series covers (2D series often miss the top or bottom:
    # uncovered brain voxels of T1/T2 are 0).
    coverage: dict[str, float]
    # ICBM152 white-matter probability in [0, 1], float32 (x, y, z) like ``images``, carried
    # through the full template affine (scaling included: a prior must fit this brain's size).
    # Not masked: outside the brain it is simply the template's value (0 beyond its brain).
    wm_prior: np.ndarray

    def to_native(self, array: np.ndarray, interpolator: Interpolator = "linear") -> sitk.Image:
        """A model-grid map (x, y, z) resampled onto the native FLAIR grid.

        ``linear`` gives float32 (probabilities); ``nearest`` keeps integer labels (bool
        becomes uint8). Voxels of the FLAIR outside the model grid get 0.
        """
        if interpolator not in _INTERPOLATORS:
            raise InputError(f"interpolator must be 'linear' or 'nearest', got {interpolator!r}")
        data = np.asarray(array)
        if data.dtype == bool:
            data = data.astype(np.uint8)
        if interpolator == "linear":
            data = data.astype(np.float32, copy=False)
        try:
            image = template.from_model_array(data)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        native_to_model = registration.inverse(self.transforms.model_to_flair)
        return self.native_grid.resample(
            image, native_to_model, _INTERPOLATORS[interpolator], image.GetPixelID()
        )

    def brain_native(self) -> sitk.Image:
        """Brain mask (uint8 0/1) on the native FLAIR grid, e.g. for brain volume in ml."""
        fraction = self.to_native(self.brain.astype(np.float32), "linear")
        return sitk.Cast(fraction >= 0.5, sitk.sitkUInt8)


def read_nifti_as_sitk(path: Path | str) -> sitk.Image:
    """Read a NIfTI (or any ITK-readable) image; :class:`InputError` if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc


def preprocess(
    flair: sitk.Image, t1: sitk.Image | None = None, t2: sitk.Image | None = None
) -> Preprocessed:
    """Bring a raw study (skull on, bias, any geometry) onto the model grid.

    Raises :class:`InputError` for images that are not usable 3D volumes and for failed
    registrations or brain extractions.
    """
    timings: dict[str, float] = {}
    with _timed(timings, "validate"):
        given = {"flair": flair, "t1": t1, "t2": t2}
        series = {name: _validated(img, name) for name, img in given.items() if img is not None}
    transforms = _register(series, timings)
    with _timed(timings, "resample"):
        on_grid = {
            name: _onto_model_grid(img, _model_to_series(transforms, name))
            for name, img in series.items()
        }
        prior = _template_prior(transforms)
    corrected, brain_mask = _correct_and_extract(on_grid, prior, timings)
    with _timed(timings, "output"):
        brain_array = template.to_model_array(brain_mask) > 0
        coverage = {name: _coverage(fov, brain_array) for name, (_, fov) in on_grid.items()}
        images = {name: _masked_array(img, brain_array) for name, img in corrected.items()}
        images["flair"][brain_array] = np.maximum(images["flair"][brain_array], MIN_BRAIN_VALUE)
    with _timed(timings, "wm_prior"):
        wm_prior = _template_wm_prior(transforms)
    return Preprocessed(
        images=images,
        brain=brain_array,
        model_affine=template.model_affine(),
        timings_s=timings,
        transforms=transforms,
        native_grid=NativeGrid.of(series["flair"]),
        coverage=coverage,
        wm_prior=wm_prior,
    )


def template_wm_prior_on(image: sitk.Image) -> sitk.Image:
    """The template's white-matter probability on ``image``'s own grid (float32, [0, 1]).

    For images already prepared (skull-stripped, any grid): the image is registered to the
    template (affine, as :func:`preprocess` registers a FLAIR) and the map pulled through.
    Raises :class:`InputError` when the registration fails.
    """
    volume = _validated(image, "flair")
    template_to_image = registration.affine_to_template(volume)
    wm = sitk.Resample(
        template.template_wm_probability(),
        volume,
        registration.inverse(template_to_image),
        sitk.sitkLinear,
        0.0,
        sitk.sitkFloat32,
    )
    return sitk.Clamp(wm, sitk.sitkFloat32, 0.0, 1.0)


def _register(series: dict[str, sitk.Image], timings: dict[str, float]) -> StudyTransforms:
    """T1/T2 onto the FLAIR (rigid), the FLAIR onto the template (affine), the model grid."""
    flair_to_series: dict[str, sitk.AffineTransform] = {}
    for name in ("t1", "t2"):
        if name in series:
            with _timed(timings, f"register_{name}"):
                flair_to_series[name] = registration.rigid_to_flair(
                    series["flair"], series[name], name.upper()
                )
    with _timed(timings, "register_template"):
        template_to_flair = registration.affine_to_template(series["flair"])
        model_to_flair = registration.rigid_part(
            template_to_flair, template.template_brain_centre()
        )
    return StudyTransforms(model_to_flair, template_to_flair, flair_to_series)


def _correct_and_extract(
    on_grid: dict[str, tuple[sitk.Image, sitk.Image]],
    prior: sitk.Image,
    timings: dict[str, float],
) -> tuple[dict[str, sitk.Image], sitk.Image]:
    """N4 of every series and the brain mask, all on the model grid.

    The FLAIR is corrected inside the template prior first, because the brain mask is refined
    on its corrected intensities; T1/T2 are then corrected inside that brain.
    """
    flair_image, flair_fov = on_grid["flair"]
    with _timed(timings, "bias_flair"):
        prior_mask = brain.prior_mask(prior, flair_fov)
        corrected = {"flair": bias.n4_correct(flair_image, prior_mask)}
    with _timed(timings, "brain"):
        brain_mask = brain.refine_brain_mask(corrected["flair"], prior_mask, flair_fov)
    for name in ("t1", "t2"):
        if name in on_grid:
            with _timed(timings, f"bias_{name}"):
                image, fov = on_grid[name]
                _check_coverage(fov, brain_mask, name)
                corrected[name] = bias.n4_correct(image, sitk.And(brain_mask, fov))
    return corrected, brain_mask


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _validated(image: sitk.Image, name: str) -> sitk.Image:
    """``image`` as a float32 3D volume; :class:`InputError` when it cannot be one."""
    if not isinstance(image, sitk.Image):
        raise InputError(f"{name} must be a SimpleITK image, got {type(image).__name__}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel: "
            "a scalar (greyscale) image is required"
        )
    size = list(image.GetSize())
    if image.GetDimension() == 4 and size[3] == 1:  # single-volume 4D NIfTI
        image = sitk.Extract(image, [*size[:3], 0], [0, 0, 0, 0])
        size = size[:3]
    if image.GetDimension() != 3 or min(size) < MIN_AXIS_VOXELS:
        raise InputError(
            f"{name} must be a 3D volume with at least {MIN_AXIS_VOXELS} voxels along each axis, "
            f"got size {tuple(size)}"
        )
    volume = sitk.Cast(image, sitk.sitkFloat32)
    values = sitk.GetArrayViewFromImage(volume)
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise InputError(f"{name} contains {bad} NaN or infinite voxels")
    if not float(values.max()) > float(values.min()):
        raise InputError(f"{name} is empty: every voxel is {float(values.min())}")
    return volume


def _model_to_series(transforms: StudyTransforms, name: str) -> sitk.AffineTransform:
    """Map from model-grid points to the points of one series (FLAIR, T1 or T2)."""
    if name == "flair":
        return transforms.model_to_flair
    return registration.compose(transforms.flair_to_series[name], transforms.model_to_flair)


def _onto_model_grid(image: sitk.Image, transform: sitk.Transform) -> tuple[sitk.Image, sitk.Image]:
    """(image on the model grid, clipped to >= 0; uint8 mask of the voxels the series covers)."""
    # The fill value marks the uncovered voxels in the same pass: the interpolator never mixes
    # it in (it is only used outside the buffer); the spline's undershoot is clipped after.
    clipped = sitk.Clamp(image, sitk.sitkFloat32, 0.0)
    grid = template.model_grid()
    resampled = sitk.Resample(
        clipped, grid, transform, MODEL_GRID_INTERPOLATOR, OUTSIDE, sitk.sitkFloat32
    )
    fov = sitk.Cast(resampled > OUTSIDE / 2, sitk.sitkUInt8)
    return sitk.Clamp(resampled, sitk.sitkFloat32, 0.0), fov


def _template_prior(transforms: StudyTransforms) -> sitk.Image:
    """Template brain mask on the model grid (float, partial-volume fractions)."""
    mask = sitk.Cast(template.template_brain_mask(), sitk.sitkFloat32)
    return _template_onto_model_grid(mask, transforms)


def _template_wm_prior(transforms: StudyTransforms) -> np.ndarray:
    """Template white-matter probability on the model grid, float32 (x, y, z) in [0, 1]."""
    wm = _template_onto_model_grid(template.template_wm_probability(), transforms)
    # Linear interpolation of values in [0, 1] stays there up to rounding; clip the rounding.
    return np.clip(template.to_model_array(wm), 0.0, 1.0).astype(np.float32, copy=False)


def _template_onto_model_grid(image: sitk.Image, transforms: StudyTransforms) -> sitk.Image:
    """A float32 template-space image pulled onto the model grid (linear, 0 outside it).

    Model grid → FLAIR (rigid) → template (inverse of the full affine): one interpolation.
    """
    model_to_template = registration.compose(
        registration.inverse(transforms.template_to_flair), transforms.model_to_flair
    )
    return sitk.Resample(
        image, template.model_grid(), model_to_template, sitk.sitkLinear, 0.0, sitk.sitkFloat32
    )


def _masked_array(image: sitk.Image, brain_array: np.ndarray) -> np.ndarray:
    """Model-grid image as a float32 (x, y, z) array, exactly 0 outside the brain."""
    array = template.to_model_array(image).astype(np.float32, copy=False)
    array[~brain_array] = 0.0
    return array


def _check_coverage(fov: sitk.Image, brain_mask: sitk.Image, name: str) -> None:
    """A T1/T2 that misses most of the brain cannot feed the model: refuse it clearly."""
    covered = _coverage(fov, template.to_model_array(brain_mask) > 0)
    if covered < MIN_COVERAGE:
        raise InputError(
            f"{name} covers {covered:.0%} of the brain seen on the FLAIR "
            f"(at least {MIN_COVERAGE:.0%} required): its slab is too thin or misplaced"
        )


def _coverage(fov: sitk.Image, brain_array: np.ndarray) -> float:
    covered = template.to_model_array(fov) > 0
    total = int(brain_array.sum())
    return float((covered & brain_array).sum()) / total if total else 0.0
