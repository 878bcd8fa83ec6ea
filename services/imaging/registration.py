"""Registration of a raw clinical study: T1/T2 onto the FLAIR, the FLAIR onto the MNI template.

Conventions (ITK's): a transform returned here maps points of the *fixed* image's physical
space to the *moving* image's space, i.e. it is what :func:`SimpleITK.Resample` needs to pull
the moving image onto the fixed grid. All are returned flattened to one
:class:`SimpleITK.AffineTransform` (centre 0), so they can be inverted and composed freely.

Speed comes from registering small copies: every image is block-averaged and resampled onto
an isotropic working grid (3 mm; 6 mm for the initial search) and Mattes mutual information is
evaluated on a random subset of its voxels with a fixed seed, so results are reproducible.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk

from mslesion.services.errors import InputError
from mslesion.services.imaging import template
from mslesion.services.imaging.determinism import single_threaded

SEED = 20240611  # fixed metric-sampling seed: same input, same transform
HISTOGRAM_BINS = 32
CLIP_PERCENTILE = 99.5  # a few very bright voxels (fat, vessels) would squash the MI histogram

# ITK's Mattes metric is minus the mutual information. On open-ms: T1/T2 to FLAIR -0.7..-0.8,
# FLAIR to template -0.54..-0.62 (a uniform ball -0.34); noise stays above -0.08.
MAX_METRIC = -0.15
# Plausible template-to-subject scaling: singular values of the affine's matrix.
SCALE_RANGE = (0.6, 1.4)
# Intra-session motion between series: anything larger is a failed registration.
MAX_RIGID_SHIFT_MM = 40.0
MAX_RIGID_ANGLE_DEG = 30.0
MIN_BRAIN_IN_VIEW = 0.6  # fraction of the template brain that must land inside the FLAIR
# Brain centre is found by trying these superior-inferior shifts of the head centroid (mm):
# the head's centroid sits lower than the brain's by an amount that depends on neck coverage.
SI_SHIFTS_MM = (-30.0, -15.0, 0.0, 15.0, 30.0)
PITCHES_DEG = (-20.0, 0.0, 20.0)
INITIAL_SCALE = 0.9  # template brains are larger than most patients'
SEARCH_SPACING_MM = 6.0
# The template mask is dilated by this much for the metric: the dark rim just outside the
# brain (the subject's CSF and skull) is what pins down the brain's outline.
MASK_DILATION_MM = 6.0


@dataclass(frozen=True)
class Schedule:
    """Multi-resolution schedule of one registration."""

    spacing_mm: float  # isotropic working grid
    shrink: Sequence[int]
    sigma_mm: Sequence[float]
    sampling: float  # fraction of working-grid voxels the metric samples
    iterations: int


RIGID = Schedule(spacing_mm=3.0, shrink=(2, 1), sigma_mm=(2.0, 0.0), sampling=0.05, iterations=60)
SIMILARITY = Schedule(
    spacing_mm=3.0, shrink=(4, 2), sigma_mm=(4.0, 2.0), sampling=0.25, iterations=80
)
AFFINE = Schedule(spacing_mm=3.0, shrink=(2, 1), sigma_mm=(2.0, 0.0), sampling=0.2, iterations=80)


def as_affine(transform: sitk.Transform) -> sitk.AffineTransform:
    """Flatten any linear transform (composite, Euler, similarity...) into one affine.

    Exact for linear transforms: the matrix and offset are read from the images of the origin
    and the unit vectors.
    """
    return from_matrix(affine_matrix(transform))


def affine_matrix(transform: sitk.Transform) -> np.ndarray:
    """4×4 homogeneous matrix (LPS millimetres) of a linear transform."""
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    matrix = np.eye(4)
    matrix[:3, 3] = origin
    for axis in range(3):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        matrix[:3, axis] = np.array(transform.TransformPoint(unit)) - origin
    return matrix


def from_matrix(matrix: np.ndarray) -> sitk.AffineTransform:
    """An :class:`SimpleITK.AffineTransform` from a 4×4 homogeneous matrix."""
    out = sitk.AffineTransform(3)
    out.SetMatrix(np.asarray(matrix)[:3, :3].ravel().tolist())
    out.SetTranslation(np.asarray(matrix)[:3, 3].tolist())
    return out


def compose(*transforms: sitk.Transform) -> sitk.AffineTransform:
    """``compose(a, b)(x) == a(b(x))``: the rightmost transform is applied first."""
    matrix = np.eye(4)
    for transform in transforms:
        matrix = matrix @ affine_matrix(transform)
    return from_matrix(matrix)


def inverse(transform: sitk.Transform) -> sitk.AffineTransform:
    """Inverse of a linear transform."""
    return from_matrix(np.linalg.inv(affine_matrix(transform)))


def working_copy(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """Low-pass, intensity-clipped float32 copy of ``image`` on an isotropic grid of its extent."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    # Block averaging is the cheap anti-aliasing filter: thick 2D slices are left alone.
    factors = np.maximum(np.floor(spacing_mm / np.array(image.GetSpacing())), 1).astype(int)
    if factors.max() > 1:
        image = sitk.BinShrink(image, factors.tolist())
    spacing = np.array(image.GetSpacing())
    size = np.maximum(np.round(np.array(image.GetSize()) * spacing / spacing_mm), 1)
    # Same outer edge as the input: first working voxel centre half a working voxel inside it.
    corner = (0.5 * spacing_mm / spacing - 0.5).tolist()
    small = sitk.Resample(
        image,
        [int(n) for n in size],
        sitk.Transform(),
        sitk.sitkLinear,
        image.TransformContinuousIndexToPhysicalPoint(corner),
        [spacing_mm] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )
    values = sitk.GetArrayViewFromImage(small)
    top = float(np.percentile(values[values > 0], CLIP_PERCENTILE)) if (values > 0).any() else 0.0
    return sitk.Clamp(small, sitk.sitkFloat32, 0.0, top) if top > 0 else small


@single_threaded
def rigid_to_flair(flair: sitk.Image, moving: sitk.Image, name: str) -> sitk.AffineTransform:
    """Rigid transform from FLAIR points to ``moving`` (T1 or T2 of the same study) points.

    Series of one session share the scanner's coordinate system, so the identity is the right
    start (centring would be wrong when a series covers only part of the head).
    """
    fixed = working_copy(flair, RIGID.spacing_mm)
    mov = working_copy(moving, RIGID.spacing_mm)
    start = sitk.Euler3DTransform()
    start.SetCenter(_centre(fixed))
    result, metric = _register(fixed, mov, start, RIGID, mask=None, what=f"{name} to FLAIR")
    _check_metric(metric, f"{name} to FLAIR")
    _check_rigid(result, _centre(fixed), name)
    return as_affine(result)


@single_threaded
def affine_to_template(flair: sitk.Image) -> sitk.AffineTransform:
    """Affine transform from template (MNI) points to FLAIR points.

    The FLAIR drives it, not the T1: it is always present, and 2D T1 series often cover only
    part of the brain, which leaves the affine's scaling free along the missing axis.
    Stages: brain-centre search, similarity (7 DOF), then full affine (12 DOF), all with Mattes
    MI against the skull-stripped template sampled only in a dilated brain mask (so the
    subject's skull and scalp do not pull on it).
    """
    fixed, mask = _template_working_copy(SIMILARITY.spacing_mm)
    moving = working_copy(flair, SIMILARITY.spacing_mm)
    start = _initial_similarity(flair)
    similarity, _ = _register(fixed, moving, start, SIMILARITY, mask, "FLAIR to template")
    start_affine = _centred_affine(similarity, _centre(fixed))
    result, metric = _register(fixed, moving, start_affine, AFFINE, mask, "FLAIR to template")
    _check_metric(metric, "FLAIR to template")
    _check_scaling(result)
    _check_brain_in_view(result, flair)
    return as_affine(result)


def rigid_part(affine: sitk.Transform, centre: Sequence[float]) -> sitk.AffineTransform:
    """Rotation + translation of ``affine`` (polar decomposition) that agrees with it at ``centre``.

    The model was trained on images placed rigidly in MNI space (brains keep their native
    size), so the model grid gets the template registration's orientation and position but
    not its scaling.
    """
    matrix = affine_matrix(affine)
    u, _, vt = np.linalg.svd(matrix[:3, :3])
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:  # reflection: cannot happen for a sane registration
        raise InputError("template registration produced a mirrored image (negative determinant)")
    c = np.asarray(centre, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = np.array(affine.TransformPoint(tuple(c.tolist()))) - rotation @ c
    return from_matrix(out)


def _centred_affine(transform: sitk.Transform, centre: Sequence[float]) -> sitk.AffineTransform:
    """The same map as ``transform``, parameterised about ``centre``.

    The optimiser's rotation/scale steps act about the centre: about the brain they are well
    conditioned, about the world origin (far from the head) they are not.
    """
    flat = affine_matrix(transform)
    c = np.asarray(centre, dtype=np.float64)
    out = sitk.AffineTransform(3)
    out.SetMatrix(flat[:3, :3].ravel().tolist())
    out.SetCenter(c.tolist())
    out.SetTranslation((flat[:3, :3] @ c + flat[:3, 3] - c).tolist())
    return out


@single_threaded
def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    start: sitk.Transform,
    schedule: Schedule,
    mask: sitk.Image | None,
    what: str,
) -> tuple[sitk.Transform, float]:
    """One multi-resolution Mattes MI registration (fixed points → moving points) and its metric.

    Raises:
        InputError: when ITK fails, e.g. the images do not overlap in physical space.
    """
    return _register(fixed, moving, start, schedule, mask, what)


def _register(
    fixed: sitk.Image,
    moving: sitk.Image,
    start: sitk.Transform,
    schedule: Schedule,
    mask: sitk.Image | None,
    what: str,
) -> tuple[sitk.Transform, float]:
    """Run one multi-resolution MI registration; ITK failures become :class:`InputError`."""
    method = _method(schedule, mask)
    method.SetInitialTransform(start, inPlace=False)
    try:
        result = method.Execute(fixed, moving)
    except RuntimeError as exc:  # e.g. "All samples map outside moving image buffer"
        # ITK's message (kept in the chained exception) is a multi-line source dump.
        raise InputError(
            f"registration of {what} failed: the images do not overlap in physical space "
            "(check their origin and orientation)"
        ) from exc
    return result, float(method.GetMetricValue())


def _method(schedule: Schedule, mask: sitk.Image | None) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(schedule.sampling, SEED)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=schedule.iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-5,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(schedule.shrink))
    method.SetSmoothingSigmasPerLevel(list(schedule.sigma_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


@lru_cache(maxsize=2)
def _template_working_copy(spacing_mm: float) -> tuple[sitk.Image, sitk.Image]:
    """Template T1 and its registration mask on the working grid (cached: same for every study)."""
    fixed = working_copy(template.template_t1(), spacing_mm)
    return fixed, _fixed_mask(fixed, max(1, round(MASK_DILATION_MM / spacing_mm)))


def _fixed_mask(fixed: sitk.Image, radius: int) -> sitk.Image:
    """Template brain, dilated by ``radius`` voxels, on the working grid of ``fixed``."""
    brain = sitk.Resample(
        template.template_brain_mask(), fixed, sitk.Transform(), sitk.sitkNearestNeighbor, 0
    )
    return sitk.BinaryDilate(brain, [radius] * 3)


def _initial_similarity(flair: sitk.Image) -> sitk.Similarity3DTransform:
    """Start: template brain centre on the subject's head centroid, best of a few S-I shifts.

    Candidates are scored by the metric alone (no optimisation) on a coarse grid.
    """
    fixed, mask = _template_working_copy(SEARCH_SPACING_MM)
    moving = working_copy(flair, SEARCH_SPACING_MM)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    brain_centre = np.array(stats.GetCentroid(1))
    head = sitk.OtsuThreshold(moving, 0, 1)
    stats.Execute(head)
    if not stats.HasLabel(1):
        raise InputError("FLAIR has no head: Otsu thresholding found no foreground")
    head_centre = np.array(stats.GetCentroid(1))
    # World (LPS) +z is the scanner's foot-head axis, along which head and brain centroids differ.
    superior = np.array([0.0, 0.0, 1.0])
    method = _method(Schedule(SEARCH_SPACING_MM, (1,), (0.0,), 1.0, 1), mask)
    best: tuple[float, sitk.Similarity3DTransform] | None = None
    for shift, pitch in itertools.product(SI_SHIFTS_MM, PITCHES_DEG):
        candidate = sitk.Similarity3DTransform()
        candidate.SetCenter(brain_centre.tolist())
        candidate.SetScale(INITIAL_SCALE)
        # Nodding (about the left-right axis) is the head pose that varies most in the coil.
        candidate.SetRotation((1.0, 0.0, 0.0), float(np.radians(pitch)))
        candidate.SetTranslation((head_centre + shift * superior - brain_centre).tolist())
        method.SetInitialTransform(candidate, inPlace=False)
        try:
            value = float(method.MetricEvaluate(fixed, moving))
        except RuntimeError:  # this shift puts the template outside the FLAIR: skip it
            continue
        if best is None or value < best[0]:
            best = (value, candidate)
    if best is None:
        raise InputError("registration of FLAIR to template failed: no overlap at any start")
    return best[1]


def _centre(image: sitk.Image) -> tuple[float, ...]:
    """Physical centre of an image's voxel grid."""
    centre_index = (np.array(image.GetSize()) - 1) / 2.0
    return tuple(image.TransformContinuousIndexToPhysicalPoint(centre_index.tolist()))


def _check_metric(metric: float, what: str) -> None:
    if not np.isfinite(metric) or metric > MAX_METRIC:
        raise InputError(
            f"registration of {what} failed: mutual information {metric:.3f} "
            f"(a sound registration is below {MAX_METRIC}); are both images of the same head?"
        )


def _check_rigid(transform: sitk.Transform, centre: Sequence[float], name: str) -> None:
    matrix = affine_matrix(transform)
    angle = np.degrees(np.arccos(np.clip((np.trace(matrix[:3, :3]) - 1) / 2, -1.0, 1.0)))
    shift = float(np.linalg.norm(np.array(transform.TransformPoint(tuple(centre))) - centre))
    if angle > MAX_RIGID_ANGLE_DEG or shift > MAX_RIGID_SHIFT_MM:
        raise InputError(
            f"registration of {name} to FLAIR failed: {angle:.0f}° rotation and {shift:.0f} mm "
            f"shift (series of one session differ by < {MAX_RIGID_ANGLE_DEG:.0f}° and "
            f"< {MAX_RIGID_SHIFT_MM:.0f} mm)"
        )


def _check_scaling(transform: sitk.Transform) -> None:
    scales = np.linalg.svd(affine_matrix(transform)[:3, :3], compute_uv=False)
    low, high = SCALE_RANGE
    if scales.min() < low or scales.max() > high:
        raise InputError(
            "registration of FLAIR to template failed: implausible scaling "
            f"{np.round(scales, 2).tolist()} (expected within {low}–{high})"
        )


def _check_brain_in_view(template_to_flair: sitk.Transform, flair: sitk.Image) -> None:
    """Most of the template brain must map inside the FLAIR's field of view."""
    mask = template.template_brain_mask()
    points = np.argwhere(sitk.GetArrayViewFromImage(mask)[::4, ::4, ::4] > 0)[:, ::-1] * 4
    direction = np.array(mask.GetDirection()).reshape(3, 3) * np.array(mask.GetSpacing())
    world = points @ direction.T + np.array(mask.GetOrigin())
    matrix = affine_matrix(template_to_flair)
    in_flair = world @ matrix[:3, :3].T + matrix[:3, 3]
    fl_dir = np.array(flair.GetDirection()).reshape(3, 3) * np.array(flair.GetSpacing())
    index = (in_flair - np.array(flair.GetOrigin())) @ np.linalg.inv(fl_dir).T
    inside = np.all((index >= -0.5) & (index <= np.array(flair.GetSize()) - 0.5), axis=1)
    fraction = float(inside.mean()) if len(inside) else 0.0
    if fraction < MIN_BRAIN_IN_VIEW:
        raise InputError(
            f"registration of FLAIR to template failed: only {fraction:.0%} of the brain falls "
            f"inside the FLAIR's field of view (at least {MIN_BRAIN_IN_VIEW:.0%} expected)"
        )
