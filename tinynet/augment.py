"""Random, vectorised data augmentation for MNIST-style digit batches.

Each image gets one random affine map (shift, rotation, scale, aspect ratio,
slant) and, with probability ``stroke_prob``, a stroke-width change (grey
dilation makes strokes thicker, erosion thinner). All of a batch is done with a
handful of whole-array NumPy operations, with no Python loop over images: about
1 ms for 128 images of 28x28 on one core, next to ~20 ms for a training step.

Optionally, writing conventions drawn by label (:mod:`tinynet.augment_strokes`),
an elastic distortion in the same resampling (:mod:`tinynet.augment_elastic`)
and coarse scans (:mod:`tinynet.augment_scan`); with the settings of
``examples/mnist_train.py --augment`` they cost about a tenth of a training step
of the zoo CNN (per batch of 128 on a busy 2-core machine: 40-60 ms, against
2.6 ms without them and 450-490 ms for the step), most of it in the reader's
per-image ``fit_mnist`` for the scans.

Why these defaults: real handwriting fed to an MNIST model differs from MNIST in
pen width (thin ballpoint, thick marker), placement (a digit segmented from a
photo is rarely centred to the pixel), slant and width. The ranges cover that
and stay mild enough that a 6 never turns into a 9 (rotation <= 12 degrees).

Images are white ink on black, float in [0, 1]; pixels brought in from outside
the frame are 0 (background).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .augment_elastic import elastic_displacements
from .augment_scan import coarse_scan
from .augment_strokes import StrokeConventions, break_strokes
from .warp import affine_transform, dilate, erode, image_batch

MAX_GAPS = 3
"""Most gaps :class:`Augmenter` cuts in one image's strokes (``gap_prob``)."""

# affine_transform, dilate and erode live in tinynet.warp; importable from here too.
__all__ = ["Augmenter", "affine_transform", "augment_batch", "dilate", "erode"]


def _range(name: str, value: Any, *, positive: bool) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(
            f"Augmenter: {name} must be a pair of numbers (low, high), got {value!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(
            f"Augmenter: {name} must be finite with low <= high, got {value!r}"
        )
    if positive and lo <= 0:
        raise ValueError(f"Augmenter: {name} must be > 0, got {value!r}")
    return lo, hi


def _nonneg(name: str, value: Any, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Augmenter: {name} must be a number, got {value!r}")
    if not 0 <= value <= upper:
        raise ValueError(f"Augmenter: {name} must be in [0, {upper}], got {value!r}")
    return float(value)


class Augmenter:
    """Random affine + stroke-width augmentation, configured once, called per batch.

    Parameters
    ----------
    max_shift : largest shift in pixels along each axis, drawn uniformly from
        ``[-max_shift, max_shift]`` (independently for x and y).
    max_rotation : largest rotation in degrees, uniform in ``[-r, r]``;
        positive turns counter-clockwise on screen.
    scale_range : ``(low, high)`` overall zoom factor, uniform.
    aspect_range : ``(low, high)`` width/height ratio change, log-uniform; the
        zoom is split as ``sqrt`` between the axes so the area follows
        ``scale_range`` alone.
    max_shear : largest slant in degrees, uniform in ``[-s, s]`` (horizontal
        shear: the top of a digit leans right for positive angles).
    stroke_prob : probability that an image's strokes change width; half of
        those get thicker, half thinner.
    thicken_sizes : structuring-element sizes (2 and/or 3) picked uniformly for
        thickening; a 3x3 square adds about 2 px to a stroke, 2x2 about 1 px.
    min_ink_kept : an erosion that would leave less than this fraction of the
        image's ink (a thin pen digit would vanish) is skipped for that image.
    fill_prob : probability that an image is first stretched, independently along
        x and y, so that its ink's bounding box becomes a square (at most
        ``max_fill_stretch`` times along one axis): digits scanned "to fill the
        frame", as in Semeion or some forms, look like that once normalised.
    max_fill_stretch : the cap on that stretch (a 1 stays recognisably narrow).
    convention_prob : probability that a 1, 4, 7 or 9 gets a writing convention
        MNIST's writers rarely used drawn on it (flag or foot on a 1, closed top on
        a 4, bar through a 7, g-like tail on a 9; see :mod:`tinynet.augment_strokes`).
        Needs the labels: call ``augmenter(x, rng, labels)``.
    gap_prob : probability that an image's strokes get 1-3 gaps (a skipping pen, a
        scan that lost faint ink; see :func:`tinynet.augment_strokes.break_strokes`).
    coarse_prob : probability that an image is made to look like a coarse scan
        (see :mod:`tinynet.augment_scan`), after the other changes.
    coarse_resolution : ``(low, high)`` digit height of that scan in pixels,
        uniform integers; half of the scans are black and white, half grey.
    elastic_prob : probability that an image also gets an elastic distortion (a
        smooth random displacement field, Simard et al. 2003; see
        :mod:`tinynet.augment_elastic`), in the same resampling as its affine map.
    elastic_alpha, elastic_sigma : that field's scale and Gaussian smoothing, in
        pixels.

    All zeros (``max_shift=0, max_rotation=0, scale_range=(1, 1),
    aspect_range=(1, 1), max_shear=0, stroke_prob=0``) returns the input exactly.

    The random numbers come only from the ``rng`` passed to each call, a fixed
    number per image, so the same generator state gives the same output.
    """

    def __init__(
        self,
        max_shift: float = 2.0,
        max_rotation: float = 12.0,
        scale_range: tuple[float, float] = (0.9, 1.1),
        aspect_range: tuple[float, float] = (0.85, 1.15),
        max_shear: float = 15.0,
        stroke_prob: float = 0.3,
        thicken_sizes: tuple[int, ...] = (2, 3),
        min_ink_kept: float = 0.35,
        fill_prob: float = 0.0,
        max_fill_stretch: float = 2.5,
        convention_prob: float = 0.0,
        gap_prob: float = 0.0,
        coarse_prob: float = 0.0,
        coarse_resolution: tuple[int, int] = (8, 16),
        elastic_prob: float = 0.0,
        elastic_alpha: float = 34.0,
        elastic_sigma: float = 4.0,
    ) -> None:
        self.fill_prob = _nonneg("fill_prob", fill_prob, 1.0)
        self.max_fill_stretch = _nonneg("max_fill_stretch", max_fill_stretch)
        if self.max_fill_stretch < 1.0:
            raise ValueError(
                f"Augmenter: max_fill_stretch must be >= 1, got {max_fill_stretch!r}"
            )
        self.max_shift = _nonneg("max_shift", max_shift)
        self.max_rotation = _nonneg("max_rotation", max_rotation, 180.0)
        self.scale_range = _range("scale_range", scale_range, positive=True)
        self.aspect_range = _range("aspect_range", aspect_range, positive=True)
        self.max_shear = _nonneg("max_shear", max_shear, 60.0)
        self.stroke_prob = _nonneg("stroke_prob", stroke_prob, 1.0)
        sizes = tuple(thicken_sizes)
        if not sizes or any(s not in (2, 3) for s in sizes):
            raise ValueError(
                f"Augmenter: thicken_sizes must be a non-empty tuple of 2 and/or 3, "
                f"got {thicken_sizes!r}"
            )
        self.thicken_sizes = sizes
        self.min_ink_kept = _nonneg("min_ink_kept", min_ink_kept, 1.0)
        self.conventions = StrokeConventions(
            _nonneg("convention_prob", convention_prob, 1.0)
        )
        self.gap_prob = _nonneg("gap_prob", gap_prob, 1.0)
        self.coarse_prob = _nonneg("coarse_prob", coarse_prob, 1.0)
        lo, hi = _range("coarse_resolution", coarse_resolution, positive=True)
        if lo != int(lo) or hi != int(hi) or lo < 4:
            raise ValueError(
                "Augmenter: coarse_resolution must be whole pixels >= 4, "
                f"got {coarse_resolution!r}"
            )
        self.coarse_resolution = (int(lo), int(hi))
        self.elastic_prob = _nonneg("elastic_prob", elastic_prob, 1.0)
        self.elastic_alpha = _nonneg("elastic_alpha", elastic_alpha)
        self.elastic_sigma = _nonneg("elastic_sigma", elastic_sigma)
        if self.elastic_sigma <= 0:
            raise ValueError(
                f"Augmenter: elastic_sigma must be > 0, got {elastic_sigma!r}"
            )

    @property
    def uses_labels(self) -> bool:
        """True when some changes depend on the label: call with ``labels``."""
        return self.conventions.prob > 0

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""
        return {
            "max_shift": self.max_shift,
            "max_rotation": self.max_rotation,
            "scale_range": list(self.scale_range),
            "aspect_range": list(self.aspect_range),
            "max_shear": self.max_shear,
            "stroke_prob": self.stroke_prob,
            "thicken_sizes": list(self.thicken_sizes),
            "min_ink_kept": self.min_ink_kept,
            "fill_prob": self.fill_prob,
            "max_fill_stretch": self.max_fill_stretch,
            "convention_prob": self.conventions.prob,
            "gap_prob": self.gap_prob,
            "coarse_prob": self.coarse_prob,
            "coarse_resolution": list(self.coarse_resolution),
            "elastic_prob": self.elastic_prob,
            "elastic_alpha": self.elastic_alpha,
            "elastic_sigma": self.elastic_sigma,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Augmenter({args})"

    def matrices(self, n: int, h: int, w: int, u: np.ndarray) -> np.ndarray:
        """Forward affine maps ``(n, 2, 3)`` about the image centre from uniforms.

        ``u`` : (n, >= 6) uniform [0, 1) numbers, one row per image.
        """
        sym = 2.0 * u[:, :6] - 1.0  # uniform in [-1, 1)
        theta = np.deg2rad(self.max_rotation) * sym[:, 2]
        lo, hi = self.scale_range
        scale = lo + (hi - lo) * u[:, 3]
        alo, ahi = np.log(self.aspect_range)
        root_aspect = np.exp(0.5 * (alo + (ahi - alo) * u[:, 4]))
        slant = np.tan(np.deg2rad(self.max_shear) * sym[:, 5])
        zx, zy = scale * root_aspect, scale / root_aspect
        cos, sin = np.cos(theta), np.sin(theta)
        # L = rotation @ shear @ diag(zx, zy), in (col, row) coordinates where
        # row grows downwards; [[cos, sin], [-sin, cos]] is counter-clockwise.
        lin = np.empty((n, 2, 2))
        lin[:, 0, 0] = cos * zx
        lin[:, 0, 1] = (sin - cos * slant) * zy
        lin[:, 1, 0] = -sin * zx
        lin[:, 1, 1] = (cos + sin * slant) * zy
        centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        shift = self.max_shift * sym[:, :2]
        out = np.empty((n, 2, 3))
        out[:, :, :2] = lin
        out[:, :, 2] = centre + shift - lin @ centre
        return out

    def __call__(
        self,
        x: np.ndarray,
        rng: np.random.Generator,
        labels: np.ndarray | None = None,
    ) -> np.ndarray:
        """Augment a batch.

        Parameters
        ----------
        x : (N, H, W) or (N, H, W, 1) float32/float64 in [0, 1], ink bright.
        rng : the generator all randomness is drawn from.
        labels : (N,) integer class labels; needed when ``uses_labels``.

        Returns
        -------
        A new array, same shape and dtype as ``x``, values in [0, 1].
        """
        x3, shape = image_batch(x, "Augmenter")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"Augmenter: rng must be a numpy.random.Generator, got "
                f"{type(rng).__name__}"
            )
        n, h, w = x3.shape
        # Drawn even for n == 0 or zero ranges: the stream only depends on n.
        u = rng.random((n, 8))
        fill_u = rng.random((n,))
        convention_u = rng.random((n, 6))
        scan_u = rng.random((n, 3))
        gap_u = rng.random((n, 2 + 3 * MAX_GAPS))
        displacement = None
        if self.elastic_prob > 0:  # drawn last: the draws above keep their values
            displacement = self._elastic(rng.random((n,)), rng.random((n, h, w, 2)))
        images = x3
        if self.conventions.prob > 0 and n:
            images = self.conventions(images, self._labels(labels, n), convention_u)
        if self.stroke_prob > 0 and n:
            images = self._strokes(images, u[:, 6], u[:, 7])
        if self.gap_prob > 0 and n:
            images = self._gaps(images, gap_u)
        matrices = self.matrices(n, h, w, u)
        if self.fill_prob > 0 and n:
            self._fill_frame(images, matrices, fill_u < self.fill_prob)
        out = affine_transform(images, matrices, displacement)
        if self.coarse_prob > 0 and n:
            self._coarse_scan(out, scan_u)
        np.clip(out, 0.0, 1.0, out=out)  # bilinear rounding can overshoot by 1 ulp
        return out.reshape(shape)

    def _labels(self, labels: Any, n: int) -> np.ndarray:
        if labels is None:
            raise ValueError(
                "Augmenter: convention_prob > 0 draws strokes by label: call "
                "augmenter(x, rng, labels) with the batch's (N,) integer labels"
            )
        checked: np.ndarray = np.asarray(labels)
        if checked.shape != (n,) or not np.issubdtype(checked.dtype, np.integer):
            raise ValueError(
                f"Augmenter: labels must be ({n},) integers for a batch of {n}, "
                f"got shape {checked.shape} dtype {checked.dtype}"
            )
        return checked

    def _gaps(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The chosen images with 1 to ``MAX_GAPS`` gaps cut in their strokes."""
        idx = np.flatnonzero(u[:, 0] < self.gap_prob)
        if not idx.size:
            return x
        gaps = u[idx, 2:].reshape(-1, MAX_GAPS, 3).copy()
        count = 1 + (u[idx, 1] * MAX_GAPS).astype(np.intp)
        gaps[np.arange(MAX_GAPS) >= count[:, None], 0] = np.nan  # not cut
        x = x.copy()
        x[idx] = break_strokes(x[idx], gaps)
        return x

    def _elastic(self, pick: np.ndarray, u: np.ndarray) -> np.ndarray:
        """(N, H, W, 2) displacements: a smooth random field for the chosen images,
        zero for the others (whose fields are not computed)."""
        field = np.zeros(u.shape)
        idx = np.flatnonzero(pick < self.elastic_prob)
        field[idx] = elastic_displacements(
            u[idx], self.elastic_alpha, self.elastic_sigma
        )
        return field

    def _coarse_scan(self, x: np.ndarray, u: np.ndarray) -> None:
        """Replace the chosen images (in place) by coarse scans of themselves."""
        idx = np.flatnonzero(u[:, 0] < self.coarse_prob)
        if not idx.size:
            return
        lo, hi = self.coarse_resolution
        resolution = lo + (u[idx, 1] * (hi - lo + 1)).astype(np.intp)
        binary = u[idx, 2] < 0.5
        # Thresholds spread around 0.5 so that strokes come out thinner or bolder.
        threshold = 0.15 + 0.3 * ((u[idx, 2] * 2.0) % 1.0)
        x[idx] = coarse_scan(x[idx], resolution, threshold, binary)

    def _fill_frame(
        self, x: np.ndarray, matrices: np.ndarray, chosen: np.ndarray
    ) -> None:
        """Compose a box-filling stretch F before the chosen images' maps M (in place).

        F maps the ink's bounding box (centre c, sides bw x bh) onto a square of
        side max(bw, bh) at the image centre: F(p) = centre + S (p - c) with
        S = diag(side / bw, side / bh), capped; then M o F = [L S | L F_t + t].
        """
        idx = np.flatnonzero(chosen)
        ink = x[idx] > 0.1
        rows, cols = np.any(ink, axis=2), np.any(ink, axis=1)
        has_ink = np.any(rows, axis=1)
        idx, rows, cols = idx[has_ink], rows[has_ink], cols[has_ink]
        if not idx.size:
            return
        h, w = x.shape[1:]
        top = rows.argmax(axis=1)
        bottom = h - 1 - rows[:, ::-1].argmax(axis=1)
        left = cols.argmax(axis=1)
        right = w - 1 - cols[:, ::-1].argmax(axis=1)
        bh, bw = bottom - top + 1.0, right - left + 1.0
        side = np.maximum(bh, bw)
        cap = self.max_fill_stretch
        sx, sy = np.minimum(side / bw, cap), np.minimum(side / bh, cap)
        centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        box_centre = np.stack([(left + right) / 2.0, (top + bottom) / 2.0], axis=1)
        lin = matrices[idx, :, :2]
        f_shift = centre - np.stack([sx, sy], axis=1) * box_centre
        matrices[idx, :, 2] += np.einsum("nij,nj->ni", lin, f_shift)
        matrices[idx, :, 0] = lin[:, :, 0] * sx[:, None]
        matrices[idx, :, 1] = lin[:, :, 1] * sy[:, None]

    def _strokes(self, x: np.ndarray, pick: np.ndarray, kind: np.ndarray) -> np.ndarray:
        half = 0.5 * self.stroke_prob
        thicker = np.flatnonzero(pick < half)
        thinner = np.flatnonzero((pick >= half) & (pick < self.stroke_prob))
        if not (thicker.size or thinner.size):
            return x
        x = x.copy()
        sizes = np.asarray(self.thicken_sizes)[
            (kind * len(self.thicken_sizes)).astype(np.intp)
        ]
        for size in self.thicken_sizes:
            sel = thicker[sizes[thicker] == size]
            if sel.size:
                x[sel] = dilate(x[sel], size)
        if thinner.size:
            before = x[thinner]
            after = erode(before, 2)
            ink_before = before.sum(axis=(1, 2))
            keep = after.sum(axis=(1, 2)) >= self.min_ink_kept * ink_before
            x[thinner[keep]] = after[keep]
        return x


def augment_batch(
    x: np.ndarray, rng: np.random.Generator, **settings: Any
) -> np.ndarray:
    """Augment ``x`` (N, 28, 28) or (N, 28, 28, 1) once with ``Augmenter(**settings)``.

    For repeated use build an ``Augmenter`` once (it validates its settings in
    the constructor) and call it on each batch.
    """
    return Augmenter(**settings)(x, rng)
