"""Synthetic brain-like MRI phantoms with MS-like white-matter lesions.

The repository holds no patient data, so newcomers, CI smoke tests and the training smoke
test need something shaped like the real inputs: skull-stripped FLAIR, T1 and T2 volumes
(background exactly 0), 1 mm isotropic, LAS-oriented like FSL's MNI152 templates, plus a
binary lesion mask. :func:`make_phantom` builds one in memory, :func:`write_phantom` writes
it with the same file names and NIfTI conventions as the open-ms training data
(``FLAIR.nii.gz``, ``T1.nii.gz``, ``T2.nii.gz``, ``lesion_mask.nii.gz``).

The anatomy is deliberately simple but not piecewise constant: a randomly deformed
ellipsoidal brain, a cortical grey-matter shell of varying thickness cut by sulci, an
interhemispheric fissure, two lateral ventricles, white matter everywhere else, and
irregular lesions placed in white matter, mostly around the ventricles. Images get a
partial-volume blur, a smooth multiplicative bias field and Gaussian noise.
Only numpy and scipy.ndimage are used; the default shape takes well under two seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mslesion.services.errors import InputError
from mslesion.services.segmentation.lesions import LESION_CONNECTIVITY, label_lesions

DEFAULT_SHAPE: Final[tuple[int, int, int]] = (96, 112, 96)
"""Default phantom grid, voxels (X, Y, Z); about half the MNI152 1 mm grid per axis."""

MIN_EDGE: Final = 32
"""Smallest accepted edge, voxels: below it the cortex and ventricles leave no deep WM."""

INTENSITY_SCALE: Final = 400.0
"""Multiplies the relative tissue intensities, so values look like raw scanner units."""

# Tissue labels of Phantom.tissue (healthy anatomy; lesions are in Phantom.mask).
BACKGROUND: Final = 0
CSF: Final = 1
GREY_MATTER: Final = 2
WHITE_MATTER: Final = 3

FILE_NAMES: Final[dict[str, str]] = {
    "FLAIR": "FLAIR.nii.gz",
    "T1": "T1.nii.gz",
    "T2": "T2.nii.gz",
    "lesion_mask": "lesion_mask.nii.gz",
}
"""Files of one subject folder, keyed like the dict returned by :func:`write_phantom`."""

# Relative intensities of healthy tissue, indexed by tissue label (background stays 0).
# They follow the contrasts of skull-stripped clinical scans, relative to white matter:
# FLAIR suppresses CSF and shows GM about 15 % above WM; T1 has WM > GM (about 0.8) > CSF;
# T2 has CSF brightest and GM about 25 % above WM.
_TISSUE_INTENSITY: Final[dict[str, tuple[float, float, float, float]]] = {
    "flair": (0.0, 0.15, 0.69, 0.60),
    "t1": (0.0, 0.25, 0.78, 1.00),
    "t2": (0.0, 1.60, 0.62, 0.50),
}
# Lesion intensity range per modality. One draw per lesion is shared by the three images so
# that a lesion bright on FLAIR/T2 is also the darker one on T1 (as for real lesion cores).
# FLAIR lesions are 1.33-1.67x white matter: on the 17 annotated scans of both sites the
# lesion voxels' median FLAIR is 1.27-1.53x the white-matter peak (models/shipped/*/
# MODEL_CARD.md, "Standardisation"). Brighter, cartoon lesions (2.2-2.7x, as before
# 2026-12-06) blur into a halo that a model trained on MRI counts as lesion: the demo then
# reported twice the truth.
# T1 lesions are hypo-intense, below GM; T2 lesions 1.6-2x white matter.
_LESION_INTENSITY: Final[dict[str, tuple[float, float]]] = {
    "flair": (0.80, 1.00),
    "t1": (0.85, 0.60),  # reversed on purpose: the brightest FLAIR lesion is the darkest on T1
    "t2": (0.80, 1.00),
}

_SMOOTHING_SIGMA: Final = 0.7  # voxels; partial-volume blur so edges are not steps
_NOISE_FRACTION_OF_WM: Final = 0.03
_BIAS_AMPLITUDE: Final = 0.10  # peak relative deviation of the bias field inside the brain
_BRAIN_FLOOR_FRACTION: Final = 0.01  # of INTENSITY_SCALE

_LESION_RADIUS_RANGE: Final = (1.5, 5.0)  # voxels, per ellipsoid semi-axis
_LESION_MAX_PARTS: Final = 4
_LESION_MIN_WM_DEPTH: Final = 3.0  # voxels from the nearest non-WM voxel, for lesion centres
_PERIVENTRICULAR_DISTANCE: Final = 8.0  # voxels from a ventricle, for "periventricular"
_PERIVENTRICULAR_FRACTION: Final = 0.6  # share of lesion centres drawn periventricular
_SEPARATE_ATTEMPTS: Final = 40  # tries to place a lesion that touches no other one

_Float32Array = npt.NDArray[np.float32]
_UInt8Array = npt.NDArray[np.uint8]
_BoolArray = npt.NDArray[np.bool_]
_Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Phantom:
    """One synthetic subject. Every array has the same (X, Y, Z) shape.

    Attributes:
        flair: FLAIR image, float32, exactly 0 outside ``brain``, strictly positive inside.
        t1: T1-weighted image, float32, same conventions as ``flair``.
        t2: T2-weighted image, float32, same conventions as ``flair``.
        mask: lesion mask, uint8 with values 0/1, inside ``brain`` and never in CSF.
        brain: brain mask, bool.
        affine: 4x4 float64 voxel-to-world matrix, 1 mm isotropic LAS
            (``diag(-1, 1, 1, 1)``), the array centre at world (0, 0, 0).
        tissue: uint8 healthy-tissue labels (``BACKGROUND``, ``CSF``, ``GREY_MATTER``,
            ``WHITE_MATTER``) before lesions were drawn; lesion voxels keep the label of the
            tissue they replaced.
    """

    flair: _Float32Array
    t1: _Float32Array
    t2: _Float32Array
    mask: _UInt8Array
    brain: _BoolArray
    affine: _Float64Array
    tissue: _UInt8Array

    def __post_init__(self) -> None:
        shape = self.brain.shape
        for name in ("flair", "t1", "t2", "mask", "tissue"):
            array = getattr(self, name)
            if array.shape != shape:
                raise InputError(
                    f"Phantom.{name} has shape {array.shape}, expected the brain shape {shape}"
                )
        if self.affine.shape != (4, 4):
            raise InputError(f"Phantom.affine must be 4x4, got shape {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (X, Y, Z) in voxels."""
        x, y, z = self.brain.shape
        return (x, y, z)


def phantom_affine(shape: Sequence[int]) -> _Float64Array:
    """Return the 1 mm LAS affine (FSL MNI152 convention) centring ``shape`` on world 0.

    Args:
        shape: grid shape (X, Y, Z).

    Returns:
        4x4 float64 matrix ``diag(-1, 1, 1, 1)`` whose translation maps voxel
        ``(X//2, Y//2, Z//2)`` to world ``(0, 0, 0)`` mm.
    """
    x, y, z = _validate_shape(shape)
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    # x_world = -i + X//2, y_world = j - Y//2, z_world = k - Z//2.
    affine[:3, 3] = [x // 2, -(y // 2), -(z // 2)]
    return affine


def make_phantom(
    shape: Sequence[int] = DEFAULT_SHAPE, n_lesions: int = 12, seed: int = 0
) -> Phantom:
    """Build a synthetic skull-stripped brain with ``n_lesions`` MS-like lesions.

    The result depends only on the arguments: the same seed gives bit-identical arrays.

    Lesions are irregular blobs (a union of 1 to 4 randomly rotated ellipsoids with semi-axes
    of 1.5 to 5 voxels) centred in white matter at least 3 voxels from other tissue, with a
    preference for periventricular white matter. Each is restricted to non-CSF brain and
    reduced to its largest 26-connected part, so it is one connected lesion. Lesions are
    placed so that they do not touch each other whenever the free white matter allows it,
    so the mask normally has exactly ``n_lesions`` 26-connected components; when space runs
    out a lesion may merge with a neighbour.

    Args:
        shape: grid (X, Y, Z) in voxels, each at least ``MIN_EDGE``.
        n_lesions: number of lesions, 0 or more (0 gives an empty mask).
        seed: non-negative seed of the random generator.

    Returns:
        The phantom.

    Raises:
        InputError: when an argument is out of range or the grid holds no white matter deep
            enough for a lesion centre.
    """
    grid = _validate_shape(shape)
    if isinstance(n_lesions, bool) or not isinstance(n_lesions, int | np.integer):
        raise InputError(f"n_lesions must be an integer, got {n_lesions!r}")
    if n_lesions < 0:
        raise InputError(f"n_lesions must be 0 or more, got {n_lesions}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")

    rng = np.random.default_rng(int(seed))
    tissue, ventricles = _draw_anatomy(grid, rng)
    brain = tissue != BACKGROUND
    lesion_ids = _place_lesions(tissue, ventricles, int(n_lesions), rng)
    # One severity draw per lesion, shared by the modalities (see _LESION_INTENSITY).
    severity = rng.uniform(0.0, 1.0, size=int(n_lesions))
    images = {
        modality: _render(modality, tissue, brain, lesion_ids, severity, rng)
        for modality in ("flair", "t1", "t2")
    }
    return Phantom(
        flair=images["flair"],
        t1=images["t1"],
        t2=images["t2"],
        mask=(lesion_ids > 0).astype(np.uint8),
        brain=brain,
        affine=phantom_affine(grid),
        tissue=tissue,
    )


def write_phantom(phantom: Phantom, out_dir: Path) -> dict[str, Path]:
    """Write a phantom as one subject folder in the open-ms training-data layout.

    Images are float32 and the mask uint8, with qform and sform codes 1 (scanner) and mm
    units, so the files load like ``open-ms/cross_sectional/patientNN``. Existing files of
    the same names are overwritten.

    Args:
        phantom: the phantom to write.
        out_dir: subject folder; created (with parents) when missing.

    Returns:
        Written paths keyed ``"FLAIR"``, ``"T1"``, ``"T2"`` and ``"lesion_mask"``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "FLAIR": phantom.flair.astype(np.float32, copy=False),
        "T1": phantom.t1.astype(np.float32, copy=False),
        "T2": phantom.t2.astype(np.float32, copy=False),
        "lesion_mask": phantom.mask.astype(np.uint8, copy=False),
    }
    affine = np.asarray(phantom.affine, dtype=np.float64)
    paths: dict[str, Path] = {}
    for name, array in arrays.items():
        image = nib.Nifti1Image(array, affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        image.header.set_xyzt_units(xyz="mm")
        path = out_dir / FILE_NAMES[name]
        nib.save(image, path)
        paths[name] = path
    return paths


def subject_seeds(n_subjects: int, seed: int = 0) -> list[int]:
    """Return the per-subject phantom seeds used by :func:`write_phantom_dataset`.

    Seeds come from ``numpy.random.SeedSequence(seed)``, so datasets written with different
    ``seed`` values do not share subjects, and the first k seeds do not depend on
    ``n_subjects``.

    Args:
        n_subjects: number of seeds, 0 or more.
        seed: non-negative dataset seed.

    Returns:
        ``n_subjects`` seeds for :func:`make_phantom`.
    """
    if n_subjects < 0:
        raise InputError(f"n_subjects must be 0 or more, got {n_subjects}")
    if seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    states = np.random.SeedSequence(seed).generate_state(n_subjects, dtype=np.uint32)
    return [int(value) for value in states]


def write_phantom_dataset(
    out_dir: Path,
    n_subjects: int = 3,
    shape: Sequence[int] = DEFAULT_SHAPE,
    seed: int = 0,
    n_lesions: int = 12,
) -> list[Path]:
    """Write ``n_subjects`` phantom subject folders (``subject01``, ``subject02``, ...).

    Each subject is :func:`make_phantom` with its own seed from :func:`subject_seeds`, so the
    dataset is reproducible from ``seed`` alone.

    Args:
        out_dir: dataset folder; created when missing.
        n_subjects: number of subjects, at least 1.
        shape: grid of every subject, voxels.
        seed: non-negative dataset seed.
        n_lesions: lesions per subject.

    Returns:
        The subject folders, in order.
    """
    if n_subjects < 1:
        raise InputError(f"n_subjects must be at least 1, got {n_subjects}")
    out_dir = Path(out_dir)
    width = max(2, len(str(n_subjects)))
    folders: list[Path] = []
    for index, subject_seed in enumerate(subject_seeds(n_subjects, seed), start=1):
        folder = out_dir / f"subject{index:0{width}d}"
        write_phantom(make_phantom(shape, n_lesions=n_lesions, seed=subject_seed), folder)
        folders.append(folder)
    return folders


def _validate_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise InputError(f"shape must be a sequence of 3 integers, got {shape!r}") from None
    if len(values) != 3 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values
    ):
        raise InputError(f"shape must be 3 integers (X, Y, Z), got {shape!r}")
    if min(values) < MIN_EDGE:
        raise InputError(f"every edge of shape must be at least {MIN_EDGE} voxels, got {values}")
    return (int(values[0]), int(values[1]), int(values[2]))


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int, int], sigma: float
) -> _Float32Array:
    """Gaussian random field with correlation length ``sigma`` voxels, zero mean, unit std.

    Filtering white noise in the Fourier domain costs one FFT pair whatever ``sigma`` is,
    where ``ndimage.gaussian_filter`` grows with the kernel; the field is periodic, which is
    invisible because the brain never reaches the grid edge.
    """
    # float32 throughout: NumPy >= 2 transforms single precision natively, twice as fast.
    noise = rng.standard_normal(shape, dtype=np.float32)
    spectrum = np.fft.rfftn(noise)
    kx = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None, None]
    ky = np.fft.fftfreq(shape[1]).astype(np.float32)[None, :, None]
    kz = np.fft.rfftfreq(shape[2]).astype(np.float32)[None, None, :]
    transfer = np.exp(np.float32(-2.0 * math.pi**2 * sigma**2) * (kx**2 + ky**2 + kz**2))
    field = np.fft.irfftn(spectrum * transfer, s=shape, axes=(0, 1, 2))
    field -= field.mean()
    std = float(field.std())
    if std > 0:
        field /= np.float32(std)
    return field.astype(np.float32)


def _draw_anatomy(
    shape: tuple[int, int, int], rng: np.random.Generator
) -> tuple[_UInt8Array, _BoolArray]:
    """Return the tissue label map and the ventricle mask."""
    size = np.asarray(shape, dtype=np.float64)
    centre = (size - 1.0) / 2.0
    # Semi-axes leave room for the size jitter (+4 %) and the deformation below (at most
    # +14.3 %): the brain reaches at most 0.476 of each edge from the centre, inside the grid.
    semi = np.array([0.40, 0.40, 0.38]) * size * rng.uniform(0.96, 1.04, size=3)
    # Python floats keep the float32 grids below in float32 (NumPy 2 scalar promotion).
    ax, ay, az = (float(v) for v in semi)
    dx, dy, dz = (
        (np.arange(n, dtype=np.float32) - np.float32(c)).reshape(
            [-1 if axis == i else 1 for axis in range(3)]
        )
        for i, (n, c) in enumerate(zip(shape, centre, strict=True))
    )
    radius = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2 + (dz / az) ** 2)

    shortest = float(min(shape))
    deformation = np.clip(_smooth_field(rng, shape, 0.12 * shortest), -2.5, 2.5)
    radius = radius * (1.0 + 0.05 * deformation)
    brain = radius <= 1.0

    # Cortical thickness varies smoothly around 4 voxels (real cortex: about 1.5-4.5 mm) and
    # is turned into normalised-radius units by the mean semi-axis.
    thickness_vox = np.clip(4.0 + 1.2 * _smooth_field(rng, shape, 0.06 * shortest), 2.0, 7.0)
    thickness = thickness_vox / float(semi.mean())
    cortex = brain & (radius > 1.0 - thickness)
    # Sulci: thin sheets along the zero level set of a random field, kept inside the
    # cortex so that grey matter lines their walls and fundi as in real brains.
    sulcus_field = _smooth_field(rng, shape, 0.05 * shortest)
    sulci = cortex & (np.abs(sulcus_field) < 0.12) & (radius > 1.0 - 0.85 * thickness)

    # Interhemispheric fissure with medial cortex, dorsal only so that a corpus-callosum-like
    # white-matter bridge remains above the ventricles.
    dorsal_outer = brain & (radius > 0.5) & (dz > -0.2 * az)
    fissure = dorsal_outer & (np.abs(dx) < 1.0)
    medial_cortex = dorsal_outer & (np.abs(dx) < 1.0 + thickness_vox)

    ventricles = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        ox = side * 0.075 * shape[0] * float(rng.uniform(0.9, 1.1))
        oy = 0.02 * shape[1] * float(rng.uniform(-1.0, 1.0))
        oz = 0.06 * shape[2] * float(rng.uniform(0.8, 1.2))
        vx, vy, vz = (
            float(v) for v in np.array([0.045, 0.20, 0.075]) * size * rng.uniform(0.85, 1.15, 3)
        )
        ventricles |= (((dx - ox) / vx) ** 2 + ((dy - oy) / vy) ** 2 + ((dz - oz) / vz) ** 2) <= 1.0
    ventricles &= brain

    tissue = np.zeros(shape, dtype=np.uint8)
    tissue[brain] = WHITE_MATTER
    tissue[cortex | medial_cortex] = GREY_MATTER
    tissue[sulci | fissure | ventricles] = CSF
    return tissue, ventricles


def _random_rotation(rng: np.random.Generator) -> _Float64Array:
    # QR of a Gaussian matrix with the sign fix gives a uniformly distributed orthogonal matrix.
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    rotation: _Float64Array = q * np.sign(np.diag(r))
    return rotation


def _draw_blob(
    centre: _Float64Array,
    rng: np.random.Generator,
    shape: tuple[int, int, int],
) -> tuple[tuple[slice, slice, slice], _BoolArray]:
    """Rasterise one irregular lesion: a union of 1-4 overlapping rotated ellipsoids.

    Returns the bounding box (slices into the volume) and the blob inside it.
    """
    n_parts = int(rng.integers(1, _LESION_MAX_PARTS + 1))
    low, high = _LESION_RADIUS_RANGE
    parts: list[tuple[_Float64Array, _Float64Array, _Float64Array]] = []
    first_radii = rng.uniform(low, high, size=3)
    first_rotation = _random_rotation(rng)
    parts.append((centre, first_radii, first_rotation))
    for _ in range(n_parts - 1):
        # Satellite centres lie inside the first ellipsoid, so each satellite overlaps it and
        # the union is connected.
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        inside = direction * first_radii * 0.8 * rng.uniform(0.0, 1.0) ** (1.0 / 3.0)
        parts.append(
            (
                centre + first_rotation @ inside,
                rng.uniform(low, high, size=3),
                _random_rotation(rng),
            )
        )

    reach = max(float(np.linalg.norm(c - centre)) + float(r.max()) for c, r, _ in parts)
    lo = np.maximum(np.floor(centre - reach).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(centre + reach).astype(int) + 2, shape)
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    grid = np.stack(
        np.meshgrid(
            *(np.arange(a, b, dtype=np.float64) for a, b in zip(lo, hi, strict=True)), indexing="ij"
        ),
        axis=-1,
    )
    blob = np.zeros(grid.shape[:3], dtype=bool)
    for part_centre, radii, rotation in parts:
        # Coordinates in the ellipsoid's own frame: rows of rotation.T are its axes.
        local = (grid - part_centre) @ rotation
        blob |= np.sum((local / radii) ** 2, axis=-1) <= 1.0
    return box, blob


def _largest_component(blob: _BoolArray) -> _BoolArray:
    labels, count = label_lesions(blob)
    if count <= 1:
        return blob
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest: _BoolArray = labels == int(np.argmax(sizes))
    return largest


def _bounding_box(mask: _BoolArray, margin: int) -> tuple[slice, slice, slice]:
    """Slices of the smallest box holding ``mask``, grown by ``margin`` within the grid."""
    bounds: list[slice] = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        bounds.append(
            slice(
                max(int(present[0]) - margin, 0),
                min(int(present[-1]) + 1 + margin, mask.shape[axis]),
            )
        )
    return (bounds[0], bounds[1], bounds[2])


def _place_lesions(
    tissue: _UInt8Array, ventricles: _BoolArray, n_lesions: int, rng: np.random.Generator
) -> npt.NDArray[np.int32]:
    """Return a map of lesion ids (1..n_lesions, 0 elsewhere)."""
    lesion_ids = np.zeros(tissue.shape, dtype=np.int32)
    if n_lesions == 0:
        return lesion_ids
    # Distance transforms dominate the cost; the brain's bounding box (plus a background
    # margin so that the box border is never white matter) gives the same distances.
    crop = _bounding_box(tissue != BACKGROUND, margin=1)
    white_matter = tissue[crop] == WHITE_MATTER
    depth = ndimage.distance_transform_edt(white_matter)
    local_candidates = np.flatnonzero(depth >= _LESION_MIN_WM_DEPTH)
    if local_candidates.size == 0:
        raise InputError(
            f"shape {tissue.shape} leaves no white matter {_LESION_MIN_WM_DEPTH} voxels deep "
            "for lesion centres; use a larger shape or n_lesions=0"
        )
    local_index = np.unravel_index(local_candidates, white_matter.shape)
    candidates = np.ravel_multi_index(
        tuple(index + axis.start for index, axis in zip(local_index, crop, strict=True)),
        tissue.shape,
    )
    # MS lesions cluster around the lateral ventricles, so most centres come from the
    # periventricular pool; the others are drawn from all deep white matter, which gives
    # deep and juxtacortical lesions too. A plain distance weighting would not do: the far
    # white matter outnumbers the periventricular band by volume.
    ventricle_distance = ndimage.distance_transform_edt(~ventricles[crop]).ravel()[local_candidates]
    periventricular = candidates[ventricle_distance <= _PERIVENTRICULAR_DISTANCE]
    if periventricular.size == 0:
        periventricular = candidates
    # Lesions replace WM or GM but never fill ventricles or sulci.
    allowed = (tissue == WHITE_MATTER) | (tissue == GREY_MATTER)

    for lesion_id in range(1, n_lesions + 1):
        attempt = 0
        while True:
            attempt += 1
            pool = periventricular if rng.random() < _PERIVENTRICULAR_FRACTION else candidates
            flat = int(pool[rng.integers(pool.size)])
            centre = np.array(np.unravel_index(flat, tissue.shape), dtype=np.float64)
            centre += rng.uniform(-0.5, 0.5, size=3)
            box, blob = _draw_blob(centre, rng, tissue.shape)
            blob &= allowed[box]
            if not blob.any():
                continue
            blob = _largest_component(blob)
            occupied = lesion_ids[box] > 0
            # Dilating by one lesion neighbourhood tests "would merge with another lesion".
            touches = bool(
                (ndimage.binary_dilation(blob, structure=LESION_CONNECTIVITY) & occupied).any()
            )
            if not touches or attempt >= _SEPARATE_ATTEMPTS:
                region = lesion_ids[box]
                region[blob & ~occupied] = lesion_id
                break
    return lesion_ids


def _render(
    modality: str,
    tissue: _UInt8Array,
    brain: _BoolArray,
    lesion_ids: npt.NDArray[np.int32],
    severity: _Float64Array,
    rng: np.random.Generator,
) -> _Float32Array:
    """Turn the label maps into one image with blur, bias field and noise."""
    lut = np.asarray(_TISSUE_INTENSITY[modality], dtype=np.float32) * np.float32(INTENSITY_SCALE)
    image = lut[tissue]
    if severity.size:
        start, stop = _LESION_INTENSITY[modality]
        lesion_lut = np.concatenate(
            [[0.0], (start + severity * (stop - start)) * INTENSITY_SCALE]
        ).astype(np.float32)
        in_lesion = lesion_ids > 0
        image[in_lesion] = lesion_lut[lesion_ids[in_lesion]]

    image = ndimage.gaussian_filter(image, sigma=_SMOOTHING_SIGMA)

    shortest = float(min(tissue.shape))
    bias = _smooth_field(rng, tissue.shape, 0.3 * shortest)
    peak = float(np.abs(bias[brain]).max())
    if peak > 0:
        image *= 1.0 + np.float32(_BIAS_AMPLITUDE / peak) * bias

    wm_level = _TISSUE_INTENSITY[modality][WHITE_MATTER] * INTENSITY_SCALE
    noise = rng.standard_normal(tissue.shape, dtype=np.float32)
    image += np.float32(_NOISE_FRACTION_OF_WM * wm_level) * noise

    # Skull-stripped data is exactly 0 outside the brain; the positive floor inside makes
    # ``image > 0`` reproduce the brain mask, which preprocessing code may rely on.
    floor = np.float32(_BRAIN_FLOOR_FRACTION * INTENSITY_SCALE)
    result: _Float32Array = np.where(brain, np.maximum(image, floor), np.float32(0.0)).astype(
        np.float32
    )
    return result
