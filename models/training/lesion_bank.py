"""Lesion-synthesis augmentation from real MS lesion shapes.

Three annotated training scans show the network few lesion shapes, sizes and loads. This
module harvests real lesion shapes from masks without images (the Ljubljana
``cross_sectional_masks_only`` set: consensus masks of 30 patients in their native 3D FLAIR
space) and pastes them into training images with a simple, per-subject calibrated
intensity model.

Conventions
-----------
* The bank lives in the training images' voxel convention: 1 mm isotropic voxels, array axes
  ordered and directed as **LAS** (axis 0 points to the subject's Left, axis 1 Anterior,
  axis 2 Superior), which is the FSL MNI152 grid of ``cross_sectional/``. Shapes are stored in
  that axis order, and ``rel_centroids[:, k]`` is the position along array axis ``k``.
* A relative centroid is the lesion centroid expressed inside the brain mask's bounding box
  (voxel centres of the extreme brain voxels), each coordinate in [0, 1]. Mapping it into
  another brain's bounding box is a crude but registration-free way to keep lesions in
  anatomically plausible places (periventricular, juxtacortical, infratentorial ...).

Only numpy, scipy, nibabel and the serving engine's lesion definition
(:mod:`mslesion.services.segmentation.lesions`) are used so that the bank can be built
without torch.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)
from scipy import ndimage

from mslesion.services.segmentation.lesions import label_lesions

__all__ = [
    "BANK_AXCODES",
    "DEFAULT_CONTRAST",
    "DEFAULT_EXCLUDE",
    "LesionBank",
    "build_lesion_bank",
    "paste_lesions",
    "white_matter_proxy",
]

log = logging.getLogger(__name__)

#: Axis codes of the bank's arrays; equal to the training images (FSL MNI152, LAS).
BANK_AXCODES: Final[tuple[str, str, str]] = ("L", "A", "S")

#: The three training patients of ``cross_sectional/``. Their masks also sit in
#: ``cross_sectional_masks_only/``; leaving them out keeps leave-one-out validation honest
#: (the held-out patient's own lesions must not be pasted into the training images).
DEFAULT_EXCLUDE: Final[frozenset[str]] = frozenset({"patient07", "patient19", "patient26"})

#: Lesion intensity relative to the subject's normal-appearing white matter (NAWM) median,
#: drawn uniformly per lesion and modality. MS lesions are hyperintense on FLAIR and T2 and
#: iso- to hypointense on T1 (down to "black holes"); the ranges are deliberately wide so the
#: network does not learn a single contrast.
DEFAULT_CONTRAST: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {
        "flair": (1.35, 1.8),
        "t1": (0.55, 0.8),
        "t2": (1.4, 2.0),
    }
)

_FORMAT_VERSION: Final[int] = 1
# Erosion elements (geometry, not the lesion definition): 6- and 26-neighbourhoods.
_CROSS: Final[np.ndarray] = ndimage.generate_binary_structure(3, 1)
_CUBE: Final[np.ndarray] = ndimage.generate_binary_structure(3, 3)
# RAS world -> LAS world (only x changes sign).
_RAS_TO_LAS: Final[np.ndarray] = np.diag([-1.0, 1.0, 1.0])


# --------------------------------------------------------------------------------------
# Bank
# --------------------------------------------------------------------------------------


@dataclass
class LesionBank:
    """A collection of real lesion shapes at 1 mm in LAS voxel order.

    Attributes:
        shapes: One bool array per lesion, cropped to the lesion's bounding box.
        rel_centroids: ``(N, 3)`` float array, lesion centroid inside the source brain mask's
            bounding box, per LAS array axis, in [0, 1].
        patient_of: Source patient id of each lesion.
        excluded: Patient ids that were deliberately left out when the bank was built, kept
            so that a cached bank can be checked against the current validation split.
    """

    shapes: list[np.ndarray]
    rel_centroids: np.ndarray
    patient_of: list[str]
    excluded: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        self.rel_centroids = np.asarray(self.rel_centroids, dtype=np.float64).reshape(-1, 3)
        n = len(self.shapes)
        if self.rel_centroids.shape[0] != n or len(self.patient_of) != n:
            raise ValueError(
                f"inconsistent bank: {n} shapes, {self.rel_centroids.shape[0]} centroids, "
                f"{len(self.patient_of)} patient ids"
            )
        for i, s in enumerate(self.shapes):
            if s.ndim != 3 or s.dtype != np.bool_:
                raise ValueError(f"shape {i} must be a 3D bool array, got {s.dtype} {s.shape}")
        self.excluded = tuple(sorted(self.excluded))

    def __len__(self) -> int:
        return len(self.shapes)

    def voxel_counts(self) -> np.ndarray:
        """Return the number of voxels (= mm³) of every lesion, shape ``(N,)``."""
        return np.array([int(s.sum()) for s in self.shapes], dtype=np.int64)

    def save(self, path: Path) -> None:
        """Write the bank to ``path`` as one compressed ``.npz`` without object arrays.

        Shapes are packed into one flat bool array plus offsets and a shape table so the file
        loads with ``allow_pickle=False``. The write is atomic (temp file + rename) because
        several training workers may share one cache path.
        """
        path = Path(path)
        sizes = np.array([s.size for s in self.shapes], dtype=np.int64)
        offsets = np.zeros(len(self.shapes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        flat = (
            np.concatenate([s.ravel() for s in self.shapes])
            if self.shapes
            else np.zeros(0, dtype=bool)
        )
        shape_table = np.array([s.shape for s in self.shapes], dtype=np.int64).reshape(-1, 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(
                    fh,
                    format_version=np.int64(_FORMAT_VERSION),
                    axcodes=np.array(BANK_AXCODES, dtype="<U1"),
                    flat=flat,
                    offsets=offsets,
                    shape_table=shape_table,
                    rel_centroids=self.rel_centroids,
                    patient_of=np.array(self.patient_of, dtype=np.str_).reshape(-1),
                    excluded=np.array(self.excluded, dtype=np.str_).reshape(-1),
                )
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> LesionBank:
        """Read a bank written by :meth:`save`.

        Raises:
            ValueError: if the file has another format version or axis convention.
        """
        with np.load(Path(path), allow_pickle=False) as z:
            version = int(z["format_version"])
            if version != _FORMAT_VERSION:
                raise ValueError(
                    f"{path}: lesion bank format {version}, expected {_FORMAT_VERSION}"
                )
            axcodes = tuple(str(a) for a in z["axcodes"])
            if axcodes != BANK_AXCODES:
                raise ValueError(f"{path}: lesion bank axes {axcodes}, expected {BANK_AXCODES}")
            flat = z["flat"].astype(bool, copy=False)
            offsets = z["offsets"]
            shape_table = z["shape_table"]
            shapes = [
                flat[offsets[i] : offsets[i + 1]].reshape(tuple(int(d) for d in shape_table[i]))
                for i in range(shape_table.shape[0])
            ]
            return cls(
                shapes=shapes,
                rel_centroids=z["rel_centroids"],
                patient_of=[str(p) for p in z["patient_of"]],
                excluded=tuple(str(p) for p in z["excluded"]),
            )


def _load_las(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a NIfTI volume reoriented to LAS array order; return (data, voxel->RAS affine)."""
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)  # type: ignore[attr-defined]
    affine = np.asarray(img.affine, dtype=np.float64)  # type: ignore[attr-defined]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got shape {data.shape}")
    ornt = ornt_transform(io_orientation(affine), axcodes2ornt(BANK_AXCODES))
    new_affine = affine @ inv_ornt_aff(ornt, data.shape)
    return apply_orientation(data, ornt), new_affine


def _bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive voxel bounding box (lo, hi) of a bool mask, or None if it is empty."""
    lo = np.empty(3, dtype=np.int64)
    hi = np.empty(3, dtype=np.int64)
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.flatnonzero(np.any(mask, axis=other))
        if idx.size == 0:
            return None
        lo[ax], hi[ax] = idx[0], idx[-1]
    return lo, hi


def _las_world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """Voxel indices ``(..., 3)`` -> LAS world millimetres (RAS world with x negated)."""
    ras = ijk @ affine[:3, :3].T + affine[:3, 3]
    return ras @ _RAS_TO_LAS.T


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The eight corners ``(8, 3)`` of an index box."""
    return np.array(
        [[(lo, hi)[b][ax] for ax, b in enumerate(bits)] for bits in np.ndindex(2, 2, 2)],
        dtype=np.float64,
    )


def _resample_to_1mm(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Resample a binary mask onto a 1 mm grid aligned with the LAS world axes.

    Linear interpolation of the 0/1 mask followed by a 0.5 threshold approximately preserves
    volume and smooths the staircase of the anisotropic source voxels. Only the mask's
    bounding box (plus a margin) is resampled: the full 512² x 192 volume would cost far
    more time and memory for the same result.

    Returns:
        (bool mask on the 1 mm grid, LAS world position in mm of its voxel [0, 0, 0]),
        or None for an empty mask.
    """
    box = _bbox(mask)
    if box is None:
        return None
    lo = np.maximum(box[0] - 2, 0)
    hi = np.minimum(box[1] + 2, np.array(mask.shape) - 1)
    crop = np.ascontiguousarray(
        mask[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1], dtype=np.float32
    )
    corners = _las_world(affine, _box_corners(lo, hi))
    q0 = np.floor(corners.min(axis=0))
    out_shape = tuple(int(d) for d in np.ceil(corners.max(axis=0)) - q0 + 1)
    # Output index u sits at LAS world q0 + u; invert to source voxel indices of the crop:
    # v = M^-1 (F^-1 (q0 + u) - t) - lo, with F the RAS->LAS flip (its own inverse).
    m_inv = np.linalg.inv(affine[:3, :3])
    matrix = m_inv @ _RAS_TO_LAS
    offset = m_inv @ (_RAS_TO_LAS @ q0 - affine[:3, 3]) - lo
    res = ndimage.affine_transform(
        crop, matrix, offset=offset, output_shape=out_shape, order=1, mode="constant", cval=0.0
    )
    return res > 0.5, q0


def _patient_lesions(
    patient_dir: Path, min_voxels: int, max_voxels: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Extract (shapes, relative centroids) of one patient's consensus mask."""
    lesion, lesion_aff = _load_las(patient_dir / "consensus_gt.nii.gz")
    brain, brain_aff = _load_las(patient_dir / "brainmask.nii.gz")
    # The two files of a patient may differ in origin by half a voxel (seen in this data
    # set), so both are taken to world coordinates through their own affines rather than
    # assuming a shared voxel grid.
    brain_box = _bbox(brain > 0)
    if brain_box is None:
        raise ValueError(f"{patient_dir}: empty brain mask")
    bcorners = _las_world(brain_aff, _box_corners(*brain_box))
    bmin, bmax = bcorners.min(axis=0), bcorners.max(axis=0)
    extent = np.maximum(bmax - bmin, 1.0)

    resampled = _resample_to_1mm(lesion > 0, lesion_aff)
    if resampled is None:
        return [], []
    iso, q0 = resampled
    # One harvested shape per lesion, as the serving engine and the metrics count lesions.
    labels, n = label_lesions(iso)
    shapes: list[np.ndarray] = []
    rels: list[np.ndarray] = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == i
        count = int(comp.sum())
        if count < min_voxels or count > max_voxels:
            continue
        start = np.array([s.start for s in sl], dtype=np.float64)
        centroid = q0 + start + np.argwhere(comp).mean(axis=0)
        shapes.append(comp)
        rels.append(np.clip((centroid - bmin) / extent, 0.0, 1.0))
    log.debug("%s: %d components, %d kept", patient_dir.name, n, len(shapes))
    return shapes, rels


def build_lesion_bank(
    masks_root: Path,
    exclude: AbstractSet[str] = DEFAULT_EXCLUDE,
    min_voxels: int = 3,
    max_voxels: int = 20000,
    patients: list[str] | None = None,
) -> LesionBank:
    """Harvest real lesion shapes from consensus masks into a :class:`LesionBank`.

    Each patient's ``consensus_gt.nii.gz`` is reoriented to LAS, resampled to 1 mm isotropic
    (linear interpolation, threshold 0.5) and split into 26-connected components; each
    component is cropped to its bounding box. Its centroid is stored relative to the
    bounding box of the patient's ``brainmask.nii.gz``.

    Args:
        masks_root: Folder with one sub-folder per patient holding ``consensus_gt.nii.gz``
            and ``brainmask.nii.gz`` (e.g. ``open-ms/cross_sectional_masks_only``).
        exclude: Patient ids never used, even when listed in ``patients``. Defaults to the
            three training patients so that their own lesions do not leak into validation.
        min_voxels: Smallest component kept, in 1 mm voxels (= mm³) after resampling.
        max_voxels: Largest component kept; very large confluent lesions cannot be placed
            inside the white matter of another brain anyway.
        patients: Patient ids to use (sub-folder names); None uses every sub-folder that has
            a consensus mask.

    Returns:
        The bank, lesions ordered by patient id and then by label order.
    """
    masks_root = Path(masks_root)
    if min_voxels < 1 or max_voxels < min_voxels:
        raise ValueError(f"invalid size limits min_voxels={min_voxels} max_voxels={max_voxels}")
    if patients is None:
        if not masks_root.is_dir():
            raise FileNotFoundError(f"lesion mask folder not found: {masks_root}")
        patients = sorted(
            p.name for p in masks_root.iterdir() if (p / "consensus_gt.nii.gz").is_file()
        )
    used = [p for p in patients if p not in exclude]
    shapes: list[np.ndarray] = []
    rels: list[np.ndarray] = []
    patient_of: list[str] = []
    for pid in used:
        s, r = _patient_lesions(masks_root / pid, min_voxels, max_voxels)
        shapes.extend(s)
        rels.extend(r)
        patient_of.extend([pid] * len(s))
        log.info("lesion bank: %s contributed %d lesions", pid, len(s))
    return LesionBank(
        shapes=shapes,
        rel_centroids=np.array(rels, dtype=np.float64).reshape(-1, 3),
        patient_of=patient_of,
        excluded=tuple(exclude),
    )


# --------------------------------------------------------------------------------------
# Pasting
# --------------------------------------------------------------------------------------


def white_matter_proxy(
    images: Mapping[str, np.ndarray], brain: np.ndarray, erosion_vox: int = 4
) -> np.ndarray:
    """Approximate a white-matter mask without a tissue segmentation.

    The brain is eroded by ``erosion_vox`` voxels (so pasted lesions stay off the cortex and
    the brain edge), then restricted to T1 above the brain's T1 median (white matter is the
    brightest tissue on T1). Without a ``"t1"`` image, FLAIR between its 30th and 85th
    brain percentiles is used instead: above CSF and below lesions.

    Args:
        images: Co-registered images keyed by modality (``"t1"`` and/or ``"flair"``).
        brain: Brain mask, same shape.
        erosion_vox: Erosion depth in voxels (approximately Euclidean).

    Returns:
        Bool white-matter proxy mask.
    """
    brain_b = np.asarray(brain).astype(bool)
    out = np.zeros(brain_b.shape, dtype=bool)
    box = _bbox(brain_b)
    if box is None:
        return out
    lo, hi = box
    sl = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))
    # Alternating 6- and 26-connected erosions approximate a Euclidean ball of radius
    # erosion_vox (an exact distance transform is ~5x slower; this runs per training sample
    # when the caller does not cache ``wm``). Voxels beyond the volume count as background.
    eroded = brain_b[sl]
    n_cross, n_cube = (erosion_vox + 1) // 2, erosion_vox // 2
    if n_cross:
        eroded = ndimage.binary_erosion(eroded, _CROSS, iterations=n_cross, border_value=0)
    if n_cube:
        eroded = ndimage.binary_erosion(eroded, _CUBE, iterations=n_cube, border_value=0)
    if "t1" in images:
        t1 = np.asarray(images["t1"])[sl]
        inside = t1[brain_b[sl]]
        tissue = t1 > np.median(inside)
    elif "flair" in images:
        flair = np.asarray(images["flair"])[sl]
        p30, p85 = np.percentile(flair[brain_b[sl]], [30.0, 85.0])
        tissue = (flair >= p30) & (flair <= p85)
    else:
        raise ValueError(f"white-matter proxy needs a 't1' or 'flair' image, got {list(images)}")
    out[sl] = eroded & tissue & brain_b[sl]
    return out


def _soft_weight(shape: np.ndarray, sigma: float) -> np.ndarray:
    """Blend weight in [0, 1] inside ``shape`` (0 outside), soft towards the edge.

    Normalised by its maximum so that even a 3-voxel lesion reaches full contrast in its
    core instead of being washed out by the smoothing.
    """
    pad = int(np.ceil(3 * sigma)) + 1
    smooth = ndimage.gaussian_filter(np.pad(shape.astype(np.float32), pad), sigma)
    smooth = smooth[pad:-pad, pad:-pad, pad:-pad]
    peak = float(smooth[shape].max())
    return np.where(shape, smooth / peak, 0.0).astype(np.float32)


def paste_lesions(
    images: Mapping[str, np.ndarray],
    brain: np.ndarray,
    mask: np.ndarray,
    bank: LesionBank,
    rng: np.random.Generator,
    n: int,
    contrast: Mapping[str, tuple[float, float]] = DEFAULT_CONTRAST,
    *,
    wm: np.ndarray | None = None,
    jitter_vox: float = 3.0,
    max_tries: int = 10,
    mirror_lr: bool = True,
    random_flips: bool = False,
    random_permutations: bool = False,
    edge_sigma: float = 0.7,
    texture_sigma: float = 1.5,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Paste up to ``n`` real lesion shapes into a subject's images.

    Images must be 1 mm isotropic arrays in the bank's LAS axis order (the MNI training
    grid); all arrays share one shape. For every lesion a random bank shape is placed at
    its relative centroid mapped into this subject's brain bounding box plus Gaussian
    jitter; a position is accepted only if the whole shape lies in the white-matter proxy
    and off existing lesions; after ``max_tries`` failed positions the lesion is skipped, so
    fewer than ``n`` may be added.

    Intensity model, per lesion and modality ``m``: target = NAWM median of ``m`` times a
    factor drawn uniformly from ``contrast[m]``. Inside the lesion the new value is
    ``orig * ((1 - w) + w * target / local_mean)``, where ``local_mean`` is a Gaussian
    brain-normalised mean of the original image; the lesion core therefore lands on the
    target intensity while keeping the image's own noise texture (``orig / local_mean``).
    ``w`` is a soft-edged weight (Gaussian-smoothed shape). Voxels outside the new lesions
    are never modified.

    Args:
        images: Co-registered images keyed by modality (``"flair"``, ``"t1"``, ``"t2"``).
        brain: Brain mask.
        mask: Existing lesion mask; the returned mask is its union with the pasted lesions
            and keeps its dtype.
        bank: Lesion shapes to draw from.
        rng: Source of all randomness (same seed, same result).
        n: Number of lesions to attempt.
        contrast: Factor range per modality; every key of ``images`` needs one.
        wm: Precomputed white-matter mask (e.g. :func:`white_matter_proxy` cached per
            subject); computed from ``images`` when None.
        jitter_vox: Standard deviation of the position jitter, voxels.
        max_tries: Positions tried per lesion before it is skipped.
        mirror_lr: Mirror shape and position left-right with probability 0.5 (the brain is
            roughly symmetric, so this doubles the positions seen).
        random_flips: Also flip the shape (not its position) along each axis at random.
        random_permutations: Randomly permute the shape's axes. Off by default because
            lesion orientation is anatomical (e.g. periventricular lesions run perpendicular
            to the ventricles).
        edge_sigma: Gaussian sigma (voxels) of the soft lesion edge.
        texture_sigma: Gaussian sigma (voxels) of the local mean that defines the texture.

    Returns:
        (new images, same keys and dtypes; new lesion mask). Inputs are not modified.

    Raises:
        ValueError: on mismatched shapes, a modality without a contrast range, or ``n > 0``
            with an empty bank.
    """
    brain_b = np.asarray(brain).astype(bool)
    vol_shape = brain_b.shape
    if np.shape(mask) != vol_shape:
        raise ValueError(f"mask shape {np.shape(mask)} != brain shape {vol_shape}")
    for key, img in images.items():
        if np.shape(img) != vol_shape:
            raise ValueError(f"image {key!r} shape {np.shape(img)} != brain shape {vol_shape}")
        if key not in contrast:
            raise ValueError(f"no contrast range for modality {key!r}; got {sorted(contrast)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > 0 and len(bank) == 0:
        raise ValueError("cannot paste lesions from an empty lesion bank")

    out_images = {k: np.array(v, copy=True) for k, v in images.items()}
    out_mask = np.array(mask, copy=True)
    if n == 0:
        return out_images, out_mask

    mask_b = np.asarray(mask).astype(bool)
    if wm is None:
        wm = white_matter_proxy(images, brain_b)
    # Never over existing lesions: their intensities are already abnormal and the label
    # would not change, so the pasted lesion would be invisible to the loss.
    allowed = np.asarray(wm).astype(bool) & brain_b & ~mask_b
    box = _bbox(brain_b)
    if box is None or not allowed.any():
        log.debug("paste_lesions: no white matter to paste into")
        return out_images, out_mask
    blo = box[0].astype(np.float64)
    bext = (box[1] - box[0]).astype(np.float64)
    nawm = {k: float(np.median(np.asarray(v)[allowed])) for k, v in images.items()}
    vol = np.array(vol_shape)

    placed = 0
    for _ in range(n):
        idx = int(rng.integers(len(bank)))
        shape = bank.shapes[idx]
        rel = bank.rel_centroids[idx].copy()
        if mirror_lr and rng.random() < 0.5:
            shape = shape[::-1]
            rel[0] = 1.0 - rel[0]
        if random_flips:
            flips = rng.random(3) < 0.5
            shape = shape[tuple(slice(None, None, -1 if f else 1) for f in flips)]
        if random_permutations:
            shape = shape.transpose(tuple(int(a) for a in rng.permutation(3)))
        shape = np.ascontiguousarray(shape)
        shape_centroid = np.argwhere(shape).mean(axis=0)
        target_centre = blo + rel * bext

        corner: np.ndarray | None = None
        for _try in range(max_tries):
            c = target_centre + rng.normal(0.0, jitter_vox, 3)
            cand = np.rint(c - shape_centroid).astype(np.int64)
            if np.any(cand < 0) or np.any(cand + shape.shape > vol):
                continue
            sl = tuple(slice(int(a), int(a) + d) for a, d in zip(cand, shape.shape, strict=True))
            if np.all(allowed[sl][shape]):
                corner = cand
                break
        if corner is None:
            continue

        lsl = tuple(slice(int(c), int(c) + d) for c, d in zip(corner, shape.shape, strict=True))
        w = _soft_weight(shape, edge_sigma)
        # Context around the lesion for the local mean; clipped at the volume border.
        pad = int(np.ceil(3 * texture_sigma))
        clo = np.maximum(corner - pad, 0)
        chi = np.minimum(corner + np.array(shape.shape) + pad, vol)
        csl = tuple(slice(int(a), int(b)) for a, b in zip(clo, chi, strict=True))
        inner = tuple(
            slice(int(c - a), int(c - a) + d)
            for c, a, d in zip(corner, clo, shape.shape, strict=True)
        )
        ctx_brain = brain_b[csl].astype(np.float32)
        norm = ndimage.gaussian_filter(ctx_brain, texture_sigma)[inner]
        for key, img in images.items():
            lo_f, hi_f = contrast[key]
            target = nawm[key] * float(rng.uniform(lo_f, hi_f))
            ctx = np.asarray(img[csl], dtype=np.float32) * ctx_brain
            local = ndimage.gaussian_filter(ctx, texture_sigma)[inner] / np.maximum(norm, 1e-6)
            orig = ctx[inner]
            gain = (1.0 - w) + w * (target / np.maximum(local, 1e-6))
            new = orig * gain
            region = out_images[key][lsl]
            if np.issubdtype(region.dtype, np.integer):
                new = np.rint(new)
            region[shape] = new[shape].astype(region.dtype)
        allowed[lsl][shape] = False
        out_mask[lsl][shape] = 1
        placed += 1

    log.debug("paste_lesions: placed %d of %d lesions", placed, n)
    return out_images, out_mask
