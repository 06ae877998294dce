"""Naive NumPy twins of the Numba kernels: the readable specification and test oracle.

Every function here has the signature of its fast namesake in ``kernels.conv``,
``kernels.convpool``, ``kernels.batchnorm``, ``kernels.winograd``,
``kernels.winograd43``, ``kernels.winograd63``, ``kernels.winograd_products``,
``kernels.pool``, ``kernels.dropout``, ``kernels.losses`` or ``kernels.optim`` and
must return the same numbers (up to float rounding). The spec-level entry points the
layers call (``conv2d``, ``max_pool2d``, ``dropout`` ...) are at the end. They are
written for clarity, loop over kernel offsets, and build an explicitly padded copy of
the input; speed does not matter.

Geometry shared by all of them (NHWC): window ``(oy, ox)`` covers the rows
``oy*sh - pt + [0, kh)`` and columns ``ox*sw - pl + [0, kw)`` of the input; positions
outside the input are padding.
"""

from __future__ import annotations

import numpy as np

from . import window_placement


def _padded(
    x: np.ndarray, pt: int, pl: int, hp: int, wp: int, fill: float
) -> np.ndarray:
    """``x`` placed at (pt, pl) in an (N, hp, wp, C) array filled with ``fill``."""
    n, h, w, c = x.shape
    xp = np.full((n, max(hp, pt + h), max(wp, pl + w), c), fill, dtype=x.dtype)
    xp[:, pt : pt + h, pl : pl + w, :] = x
    return xp


def _window(i: int, j: int, sh: int, sw: int, ho: int, wo: int) -> tuple[slice, ...]:
    """Slice of a padded array picking kernel offset (i, j) of every window."""
    return (
        slice(None),
        slice(i, i + sh * (ho - 1) + 1, sh),
        slice(j, j + sw * (wo - 1) + 1, sw),
        slice(None),
    )


# ----------------------------------------------------------------------- convolution
def im2col(
    x: np.ndarray,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    ho: int,
    wo: int,
    out: np.ndarray,
) -> np.ndarray:
    """``out[(n, oy, ox), (i, j, c)] = xpad[n, oy*sh + i, ox*sw + j, c]``."""
    n, _, _, c = x.shape
    xp = _padded(x, pt, pl, (ho - 1) * sh + kh, (wo - 1) * sw + kw, 0.0)
    cols = out.reshape(n, ho, wo, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[_window(i, j, sh, sw, ho, wo)]
    return out


def col2im(
    cols: np.ndarray,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    ho: int,
    wo: int,
    out: np.ndarray,
) -> np.ndarray:
    """Adjoint of :func:`im2col`: add every column entry back where it was read."""
    n, h, w, c = out.shape
    dxp = _padded(np.zeros_like(out), pt, pl, (ho - 1) * sh + kh, (wo - 1) * sw + kw, 0)
    cols6 = cols.reshape(n, ho, wo, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            dxp[_window(i, j, sh, sw, ho, wo)] += cols6[:, :, :, i, j, :]
    out[...] = dxp[:, pt : pt + h, pl : pl + w, :]
    return out


def add_bias(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y[r, :] += b`` for every row, in place."""
    y += b
    return y


def bias_relu(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y[r, :] = max(y[r, :] + b, 0)`` for every row, in place."""
    y += b
    np.maximum(y, 0, out=y)
    return y


def relu_mask(dout: np.ndarray, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = dout * [y > 0]``."""
    out[...] = np.where(y > 0, dout, 0)
    return out


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    ho: int,
    wo: int,
    cols: np.ndarray,
    relu: bool = False,
    pool: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``y[n, oy, ox, f] = b[f] + sum_{i,j,c} xpad[n, oy*sh+i, ox*sw+j, c] w[i,j,c,f]``
    (no ``b[f]`` term when ``b`` is None), then ``max(y, 0)`` if ``relu``; with
    ``pool = (out, argmax)``, ``y`` then goes through a 2x2 max-pool
    (:func:`pool_bias_relu`) and the pooled ``out`` is returned instead.

    Returns ``(y, cols)`` like the fast version; ``cols`` is filled by
    :func:`im2col` but ``y`` is computed directly, one kernel offset at a time.
    """
    n, _, _, c = x.shape
    kh, kw, _, f = w.shape
    xp = _padded(x, pt, pl, (ho - 1) * sh + kh, (wo - 1) * sw + kw, 0.0)
    y = np.zeros((n, ho, wo, f), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nhwc,cf->nhwf", xp[_window(i, j, sh, sw, ho, wo)], w[i, j])
    if pool is not None:
        b = np.zeros(f, x.dtype) if b is None else b
        pool_bias_relu(y, b, relu, *pool)
        return pool[0], im2col(x, kh, kw, sh, sw, pt, pl, ho, wo, cols)
    if b is not None:
        y += b
    if relu:
        y = np.maximum(y, 0)
    return y, im2col(x, kh, kw, sh, sw, pt, pl, ho, wo, cols)


def conv2d_backward(
    dout: np.ndarray,
    x: np.ndarray,
    cols: np.ndarray,
    w: np.ndarray,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    need_dx: bool = True,
    y: np.ndarray | None = None,
    pool: tuple[np.ndarray, np.ndarray, bool, int, int] | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward`, computed directly from ``x``.

    ``dw[i,j] = sum over windows of xpad_patch(i,j)^T dz``, ``db = sum dz``,
    ``dxpad_patch(i,j) += dz w[i,j]^T``, where ``dz = dout * [y > 0]`` when the
    forward ReLU output ``y`` is given and ``dout`` otherwise; with ``pool = (out,
    argmax, relu, ho, wo)``, ``dout`` is the pooled gradient and ``dz`` comes from
    :func:`unpool_relu`. ``cols`` is accepted for signature parity with the fast
    version and not used; ``need_dx=False`` returns None for dx.
    """
    if pool is not None:
        p, argmax, relu, ho, wo = pool
        dz = np.empty((dout.shape[0], ho, wo, dout.shape[3]), dtype=dout.dtype)
        dout = unpool_relu(dout, p, argmax, relu, dz)
    if y is not None:
        dout = np.where(y > 0, dout, 0)
    n, h, wd, c = x.shape
    _, ho, wo, _ = dout.shape
    kh, kw, _, _ = w.shape
    hp, wp = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    xp = _padded(x, pt, pl, hp, wp, 0.0)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            win = _window(i, j, sh, sw, ho, wo)
            dw[i, j] = np.einsum("nhwc,nhwf->cf", xp[win], dout)
            dxp[win] += np.einsum("nhwf,cf->nhwc", dout, w[i, j])
    db = dout.sum(axis=(0, 1, 2))
    if not need_dx:
        return None, dw, db
    return dxp[:, pt : pt + h, pl : pl + wd, :].copy(), dw, db


# ------------------------------------------------------- convolution + 2x2 max-pool
def _quarters(a: np.ndarray, po: int, qo: int) -> list[np.ndarray]:
    """The four entries of every 2x2 window of ``a[:, :2*po, :2*qo]``, as views, in
    row-major window order (``2a + c`` for entry ``(a, c)``)."""
    return [a[:, i : 2 * po : 2, j : 2 * qo : 2] for i in (0, 1) for j in (0, 1)]


def pool_bias_relu(
    z: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``out = max over each 2x2 window of z, + b``, then ``max(out, 0)`` if
    ``relu``; ``argmax`` = ``2a + c`` of the first maximum in row-major order.
    A last odd row or column of ``z`` belongs to no window."""
    po, qo = out.shape[1], out.shape[2]
    candidates = np.stack(_quarters(z, po, qo))
    argmax[...] = np.argmax(candidates, axis=0)  # the first maximum on ties
    pooled = candidates.max(axis=0) + b
    out[...] = np.maximum(pooled, 0) if relu else pooled
    return out, argmax


def unpool_relu(
    dout: np.ndarray, p: np.ndarray, argmax: np.ndarray, relu: bool, dz: np.ndarray
) -> np.ndarray:
    """``dz`` = ``dout * [p > 0]`` (just ``dout`` without ``relu``) at the window
    entry ``argmax`` names, 0 everywhere else."""
    g = np.where(p > 0, dout, 0) if relu else dout
    dz[...] = 0
    for k, entry in enumerate(_quarters(dz, p.shape[1], p.shape[2])):
        entry[...] = np.where(argmax == k, g, 0)
    return dz


def pooled_weight_grad(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    cols: np.ndarray,
    ho: int,
    wo: int,
    dw: np.ndarray,
    db: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``dw += cols^T dz`` and ``db += sum of dz``, with ``dz`` from
    :func:`unpool_relu` as rows ``(n, oy, ox)``."""
    n, _, _, f = dout.shape
    dz = unpool_relu(dout, p, argmax, relu, np.empty((n, ho, wo, f), dout.dtype))
    dw += cols.T @ dz.reshape(-1, f)
    db += dz.sum(axis=(0, 1, 2))
    return dw, db


# ----------------------------------- convolution + BatchNorm + ReLU (+ 2x2 max-pool)
def channel_moments(z: np.ndarray, shift: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """``sums += [sum of (z - shift), sum of (z - shift)^2]`` over the rows."""
    d = z.astype(np.float64) - shift
    sums[0] += d.sum(axis=0)
    sums[1] += (d * d).sum(axis=0)
    return sums


def normalize_relu(
    z: np.ndarray, mean: np.ndarray, scale: np.ndarray, beta: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """``y = max((z - mean) * scale + beta, 0)``."""
    y[...] = np.maximum((z - mean) * scale + beta, 0)
    return y


def normalize_relu_pool(
    z: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    beta: np.ndarray,
    out: np.ndarray,
    argmax: np.ndarray,
    winner_z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2x2 max-pool of :func:`normalize_relu` and its winners, as
    :func:`pool_bias_relu` with ``beta`` for the bias, and the winners' ``z``."""
    pool_bias_relu((z - mean) * scale, beta, True, out, argmax)
    quarters = np.stack(_quarters(z, out.shape[1], out.shape[2]))
    winner_z[...] = np.take_along_axis(quarters, argmax[None].astype(np.intp), 0)[0]
    return out, argmax, winner_z


def _relu_masked(dy: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    return dy if y is None else np.where(y > 0, dy, 0)


def normalize_backward_sums(
    dy: np.ndarray,
    y: np.ndarray | None,
    z: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    sums: np.ndarray,
) -> np.ndarray:
    """``sums += [sum of g, sum of g * xh]`` with ``g = dy * [y > 0]`` (``dy`` if
    ``y`` is None) and ``xh = (z - mean) * inv_std``."""
    g = _relu_masked(dy, y)
    sums[0] += g.sum(axis=0, dtype=np.float64)
    sums[1] += (g * ((z - mean) * inv_std)).sum(axis=0, dtype=np.float64)
    return sums


def normalize_backward(
    dy: np.ndarray,
    y: np.ndarray | None,
    z: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    scale: np.ndarray,
    mean_dbeta: np.ndarray,
    mean_dgamma: np.ndarray,
    dz: np.ndarray,
) -> np.ndarray:
    """``dz = scale * (g - mean_dbeta - xh * mean_dgamma)``, ``g`` and ``xh`` as for
    :func:`normalize_backward_sums`."""
    xh = (z - mean) * inv_std
    dz[...] = scale * (_relu_masked(dy, y) - mean_dbeta - xh * mean_dgamma)
    return dz


def pooled_normalize_backward(
    dout: np.ndarray,
    out: np.ndarray,
    argmax: np.ndarray,
    z: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    scale: np.ndarray,
    mean_dbeta: np.ndarray,
    mean_dgamma: np.ndarray,
    dz: np.ndarray,
) -> np.ndarray:
    """:func:`normalize_backward` of :func:`unpool_relu`'s gradient (ReLU on)."""
    g = unpool_relu(dout, out, argmax, True, np.empty(z.shape, dout.dtype))
    f = z.shape[3]
    normalize_backward(
        g.reshape(-1, f), None, z.reshape(-1, f), mean, inv_std, scale,
        mean_dbeta, mean_dgamma, dz.reshape(-1, f),
    )  # fmt: skip
    return dz


def relu_mask_sums(
    dout: np.ndarray, y: np.ndarray, out: np.ndarray, sums: np.ndarray
) -> np.ndarray:
    """``out = dout * [y > 0]``; ``sums +=`` its column sums."""
    out[...] = np.where(y > 0, dout, 0)
    sums += out.sum(axis=0, dtype=np.float64)
    return out


def products(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[p] = a[p] @ b[p]`` for every ``p`` (the Winograd products)."""
    np.matmul(a, b, out=out)
    return out


def relu_mask_products(
    dout: np.ndarray,
    y: np.ndarray,
    cols: np.ndarray,
    products: np.ndarray,
    sums: np.ndarray,
) -> np.ndarray:
    """``g = dout * [y > 0]``; ``products += cols^T g``, ``sums +=`` its column
    sums (float64)."""
    g = np.where(y > 0, dout, 0).astype(np.float64)
    products += cols.T.astype(np.float64) @ g
    sums += g.sum(axis=0)
    return products


# --------------------------------------------------------------------------- pooling
def maxpool_forward(
    x: np.ndarray,
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    out: np.ndarray,
    argmax: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``out`` = maxima over the real (non-padding) entries of each window;
    ``argmax`` = ``i*pw + j`` of the first maximum in row-major window order."""
    ho, wo = out.shape[1], out.shape[2]
    hp, wp = (ho - 1) * sh + ph, (wo - 1) * sw + pw
    xp = _padded(x, pt, pl, hp, wp, 0.0)
    real = _padded(np.ones_like(x, dtype=bool), pt, pl, hp, wp, False)
    seen = np.zeros(out.shape, dtype=bool)
    for i in range(ph):
        for j in range(pw):
            win = _window(i, j, sh, sw, ho, wo)
            candidate = xp[win]
            better = real[win] & (~seen | (candidate > out))
            seen |= better
            out[better] = candidate[better]
            argmax[better] = i * pw + j
    return out, argmax


def maxpool_backward(
    dout: np.ndarray,
    argmax: np.ndarray,
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    out: np.ndarray,
) -> np.ndarray:
    """Each ``dout`` entry is added at the window entry ``argmax`` points to."""
    n, h, w, c = out.shape
    ho, wo = dout.shape[1], dout.shape[2]
    dxp = _padded(np.zeros_like(out), pt, pl, (ho - 1) * sh + ph, (wo - 1) * sw + pw, 0)
    for i in range(ph):
        for j in range(pw):
            dxp[_window(i, j, sh, sw, ho, wo)] += np.where(
                argmax == i * pw + j, dout, 0
            )
    out[...] = dxp[:, pt : pt + h, pl : pl + w, :]
    return out


def _window_counts(
    h: int,
    w: int,
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    ho: int,
    wo: int,
    dtype: np.dtype,
) -> np.ndarray:
    """(1, ho, wo, 1): how many real (non-padding) entries each window holds."""
    ones = np.ones((1, h, w, 1), dtype=dtype)
    op = _padded(ones, pt, pl, (ho - 1) * sh + ph, (wo - 1) * sw + pw, 0.0)
    counts = np.zeros((1, ho, wo, 1), dtype=dtype)
    for i in range(ph):
        for j in range(pw):
            counts += op[_window(i, j, sh, sw, ho, wo)]
    return counts


def avgpool_forward(
    x: np.ndarray, ph: int, pw: int, sh: int, sw: int, pt: int, pl: int, out: np.ndarray
) -> np.ndarray:
    """``out = (sum of the real entries of the window) / (their number)``."""
    n, h, w, c = x.shape
    ho, wo = out.shape[1], out.shape[2]
    xp = _padded(x, pt, pl, (ho - 1) * sh + ph, (wo - 1) * sw + pw, 0.0)
    out[...] = 0
    for i in range(ph):
        for j in range(pw):
            out += xp[_window(i, j, sh, sw, ho, wo)]
    out /= _window_counts(h, w, ph, pw, sh, sw, pt, pl, ho, wo, x.dtype)
    return out


def avgpool_backward(
    dout: np.ndarray,
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    out: np.ndarray,
) -> np.ndarray:
    """Each real entry of a window receives ``dout / count`` of that window."""
    n, h, w, c = out.shape
    ho, wo = dout.shape[1], dout.shape[2]
    share = dout / _window_counts(h, w, ph, pw, sh, sw, pt, pl, ho, wo, dout.dtype)
    dxp = _padded(np.zeros_like(out), pt, pl, (ho - 1) * sh + ph, (wo - 1) * sw + pw, 0)
    for i in range(ph):
        for j in range(pw):
            dxp[_window(i, j, sh, sw, ho, wo)] += share
    out[...] = dxp[:, pt : pt + h, pl : pl + w, :]
    return out


# ------------------------------------------------ Winograd F(2x2, 3x3) transforms
# The four kernels of ``kernels.winograd``, each as matrix products over all tiles
# (the matrices B^T, G, A^T are the ones that module's docstring gives).
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)


def _tiles(
    x: np.ndarray, pt: int, pl: int, th: int, tw: int, size: int = 4
) -> np.ndarray:
    """(N, th, tw, size, size, C): the input tiles at stride ``size - 2``,
    zero-padded."""
    s = size - 2
    xp = _padded(x, pt, pl, s * th + 2, s * tw + 2, 0.0)
    rows = [
        np.stack(
            [xp[:, i : i + s * th : s, j : j + s * tw : s] for j in range(size)], 3
        )
        for i in range(size)
    ]
    return np.stack(rows, 3)


def winograd_input_transform(
    x: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, v: np.ndarray
) -> np.ndarray:
    """``V = B^T d B`` for every tile ``d``, as 16 planes of (tiles, C)."""
    bt = _BT.astype(x.dtype)
    vt = np.einsum("ai,ntsijc,bj->abntsc", bt, _tiles(x, pt, pl, tiles_h, tiles_w), bt)
    v[...] = vt.reshape(16, -1, x.shape[3])
    return v


def winograd_output_transform_pool(
    m: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Y = A^T M A`` per tile, the tiles laid out as the conv output, then
    :func:`pool_bias_relu`."""
    n, po, qo, f = out.shape
    at = _AT.astype(m.dtype)
    y = np.einsum("ai,ijntsf,bj->ntasbf", at, m.reshape(4, 4, n, po, qo, f), at)
    return pool_bias_relu(y.reshape(n, 2 * po, 2 * qo, f), b, relu, out, argmax)


def winograd_output_transform_pool_adjoint(
    dout: np.ndarray,
    p: np.ndarray,
    argmax: np.ndarray,
    relu: bool,
    dm: np.ndarray,
    db: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``dM = A dY A^T`` per tile, with ``dY`` from :func:`unpool_relu`; ``db``
    gets the sum of ``dY`` added."""
    n, po, qo, f = dout.shape
    dz = unpool_relu(dout, p, argmax, relu, np.empty((n, 2 * po, 2 * qo, f), dm.dtype))
    at = _AT.astype(dm.dtype)
    dy = dz.reshape(n, po, 2, qo, 2, f)
    dm[...] = np.einsum("ai,ntasbf,bj->ijntsf", at, dy, at).reshape(16, -1, f)
    db += dz.sum(axis=(0, 1, 2))
    return dm, db


def winograd_output_transform(
    m: np.ndarray, b: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """``Y = A^T M A + b`` per tile, the tiles laid out as the conv output."""
    n, ho, wo, f = y.shape
    at = _AT.astype(m.dtype)
    m6 = m.reshape(4, 4, n, ho // 2, wo // 2, f)
    y[...] = np.einsum("ai,ijntsf,bj->ntasbf", at, m6, at).reshape(y.shape) + b
    return y


def winograd_output_transform_adjoint(
    dy: np.ndarray, dm: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``dM = A dY A^T`` per tile; ``db`` gets the sum of ``dY`` added."""
    n, ho, wo, f = dy.shape
    at = _AT.astype(dm.dtype)
    dy6 = dy.reshape(n, ho // 2, 2, wo // 2, 2, f)
    dm[...] = np.einsum("ai,ntasbf,bj->ijntsf", at, dy6, at).reshape(16, -1, f)
    db += dy.sum(axis=(0, 1, 2))
    return dm, db


def winograd_input_transform_adjoint(
    dv: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, dx: np.ndarray
) -> np.ndarray:
    """``dd = B dV B^T`` per tile, added into ``dx`` at the tile's place."""
    n, h, w, c = dx.shape
    bt = _BT.astype(dx.dtype)
    dv6 = dv.reshape(4, 4, n, tiles_h, tiles_w, c)
    dd = np.einsum("ai,abntsc,bj->ntsijc", bt, dv6, bt)
    dxp = _padded(np.zeros_like(dx), pt, pl, 2 * tiles_h + 2, 2 * tiles_w + 2, 0.0)
    for i in range(4):
        for j in range(4):
            dxp[:, i : i + 2 * tiles_h : 2, j : j + 2 * tiles_w : 2] += dd[
                :, :, :, i, j
            ]
    dx[...] = dxp[:, pt : pt + h, pl : pl + w]
    return dx


# ------------------------------------- Winograd F(4x4, 3x3) and F(6x6, 3x3) transforms
# The kernels of ``kernels.winograd43`` (6x6 input tiles at stride 4, 4x4 output
# tiles) and ``kernels.winograd63`` (8x8 at stride 6, 6x6), the last tiles partial
# (the output padded, then cropped): one definition each, taking the algorithm's
# ``B^T`` and ``A^T``.
_BT43 = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    float,
)
_AT43 = np.array(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1],
    ],
    float,
)
_BT63 = np.array(
    [
        [1, 0, -21 / 4, 0, 21 / 4, 0, -1, 0],
        [0, 1, 1, -17 / 4, -17 / 4, 1, 1, 0],
        [0, -1, 1, 17 / 4, -17 / 4, -1, 1, 0],
        [0, 1 / 2, 1 / 4, -5 / 2, -5 / 4, 2, 1, 0],
        [0, -1 / 2, 1 / 4, 5 / 2, -5 / 4, -2, 1, 0],
        [0, 2, 4, -5 / 2, -5, 1 / 2, 1, 0],
        [0, -2, 4, 5 / 2, -5, -1 / 2, 1, 0],
        [0, -1, 0, 21 / 4, 0, -21 / 4, 0, 1],
    ]
)
_AT63 = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 1 / 2, -1 / 2, 0],
        [0, 1, 1, 4, 4, 1 / 4, 1 / 4, 0],
        [0, 1, -1, 8, -8, 1 / 8, -1 / 8, 0],
        [0, 1, 1, 16, 16, 1 / 16, 1 / 16, 0],
        [0, 1, -1, 32, -32, 1 / 32, -1 / 32, 1],
    ]
)


def _input_transform_by(
    bt: np.ndarray,
    x: np.ndarray,
    pt: int,
    pl: int,
    tiles_h: int,
    tiles_w: int,
    v: np.ndarray,
) -> np.ndarray:
    """``V = B^T d B`` for every (t, t) tile ``d``, as t^2 planes of (tiles, C)."""
    t = bt.shape[0]
    d = _tiles(x, pt, pl, tiles_h, tiles_w, size=t)
    bt = bt.astype(x.dtype)
    v[...] = np.einsum("ai,ntsijc,bj->abntsc", bt, d, bt).reshape(t * t, -1, x.shape[3])
    return v


def _output_transform_by(
    at: np.ndarray, m: np.ndarray, b: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """``Y = A^T M A + b`` per tile, the tiles laid out as the conv output."""
    n, ho, wo, f = y.shape
    r, t = at.shape
    th, tw = -(-ho // r), -(-wo // r)
    at = at.astype(m.dtype)
    mt = m.reshape(t, t, n, th, tw, f)
    full = np.einsum("ai,ijntsf,bj->ntasbf", at, mt, at).reshape(n, r * th, r * tw, f)
    y[...] = full[:, :ho, :wo] + b
    return y


def _output_transform_adjoint_by(
    at: np.ndarray, dy: np.ndarray, dm: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``dM = A dY A^T`` per tile (``dY`` zero past the output); ``db`` gets the
    sum of ``dY`` added."""
    n, ho, wo, f = dy.shape
    r, t = at.shape
    th, tw = -(-ho // r), -(-wo // r)
    at = at.astype(dm.dtype)
    full = np.zeros((n, r * th, r * tw, f), dm.dtype)
    full[:, :ho, :wo] = dy
    dyt = full.reshape(n, th, r, tw, r, f)
    dm[...] = np.einsum("ai,ntasbf,bj->ijntsf", at, dyt, at).reshape(t * t, -1, f)
    db += dy.sum(axis=(0, 1, 2))
    return dm, db


def _input_transform_adjoint_by(
    bt: np.ndarray,
    dv: np.ndarray,
    pt: int,
    pl: int,
    tiles_h: int,
    tiles_w: int,
    dx: np.ndarray,
) -> np.ndarray:
    """``dd = B dV B^T`` per tile, added into ``dx`` at the tile's place."""
    n, h, w, c = dx.shape
    t = bt.shape[0]
    s = t - 2
    bt = bt.astype(dx.dtype)
    dvt = dv.reshape(t, t, n, tiles_h, tiles_w, c)
    dd = np.einsum("ai,abntsc,bj->ntsijc", bt, dvt, bt)
    dxp = _padded(np.zeros_like(dx), pt, pl, s * tiles_h + 2, s * tiles_w + 2, 0.0)
    for i in range(t):
        for j in range(t):
            dxp[:, i : i + s * tiles_h : s, j : j + s * tiles_w : s] += dd[
                :, :, :, i, j
            ]
    dx[...] = dxp[:, pt : pt + h, pl : pl + w]
    return dx


def winograd43_input_transform(
    x: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, v: np.ndarray
) -> np.ndarray:
    """``V = B^T d B`` for every 6x6 tile ``d``, as 36 planes of (tiles, C)."""
    return _input_transform_by(_BT43, x, pt, pl, tiles_h, tiles_w, v)


def winograd43_output_transform(
    m: np.ndarray, b: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """``Y = A^T M A + b`` per tile, the tiles laid out as the conv output."""
    return _output_transform_by(_AT43, m, b, y)


def winograd43_output_transform_pool(
    m: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Y = A^T M A`` per tile, cropped to twice the pooled size, then
    :func:`pool_bias_relu`."""
    n, po, qo, f = out.shape
    y = np.empty((n, 2 * po, 2 * qo, f), m.dtype)
    winograd43_output_transform(m, np.zeros(f, m.dtype), y)
    return pool_bias_relu(y, b, relu, out, argmax)


def winograd43_output_transform_adjoint(
    dy: np.ndarray, dm: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``dM = A dY A^T`` per tile (``dY`` zero past the output); ``db`` gets the
    sum of ``dY`` added."""
    return _output_transform_adjoint_by(_AT43, dy, dm, db)


def winograd43_input_transform_adjoint(
    dv: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, dx: np.ndarray
) -> np.ndarray:
    """``dd = B dV B^T`` per tile, added into ``dx`` at the tile's place."""
    return _input_transform_adjoint_by(_BT43, dv, pt, pl, tiles_h, tiles_w, dx)


def winograd63_input_transform(
    x: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, v: np.ndarray
) -> np.ndarray:
    """``V = B^T d B`` for every 8x8 tile ``d``, as 64 planes of (tiles, C)."""
    return _input_transform_by(_BT63, x, pt, pl, tiles_h, tiles_w, v)


def winograd63_output_transform(
    m: np.ndarray, b: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """``Y = A^T M A + b`` per tile, the tiles laid out as the conv output."""
    return _output_transform_by(_AT63, m, b, y)


def winograd63_output_transform_pool(
    m: np.ndarray, b: np.ndarray, relu: bool, out: np.ndarray, argmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``Y = A^T M A`` per tile, cropped to twice the pooled size, then
    :func:`pool_bias_relu`."""
    n, po, qo, f = out.shape
    y = np.empty((n, 2 * po, 2 * qo, f), m.dtype)
    winograd63_output_transform(m, np.zeros(f, m.dtype), y)
    return pool_bias_relu(y, b, relu, out, argmax)


def winograd63_output_transform_adjoint(
    dy: np.ndarray, dm: np.ndarray, db: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``dM = A dY A^T`` per tile (``dY`` zero past the output); ``db`` gets the
    sum of ``dY`` added."""
    return _output_transform_adjoint_by(_AT63, dy, dm, db)


def winograd63_input_transform_adjoint(
    dv: np.ndarray, pt: int, pl: int, tiles_h: int, tiles_w: int, dx: np.ndarray
) -> np.ndarray:
    """``dd = B dV B^T`` per tile, added into ``dx`` at the tile's place."""
    return _input_transform_adjoint_by(_BT63, dv, pt, pl, tiles_h, tiles_w, dx)


# --------------------------------------------------------------------------- dropout
def random_bits(key: int | np.uint64, k: int | np.ndarray) -> np.ndarray:
    """SplitMix64 as written in ``kernels.dropout``, on an array of entry indices."""
    s = np.uint64(key) + (np.asarray(k, dtype=np.uint64) + np.uint64(1)) * np.uint64(
        0x9E3779B97F4A7C15
    )
    s = (s ^ (s >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    s = (s ^ (s >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((s ^ (s >> np.uint64(31))) >> np.uint64(32)).astype(np.uint32)


def _mask(
    key: int | np.uint64,
    threshold: int | np.uint32,
    scale: float | np.floating,
    shape: tuple[int, ...],
    dtype: np.dtype,
) -> np.ndarray:
    keep = random_bits(key, np.arange(int(np.prod(shape)))).reshape(shape) >= threshold
    return np.where(keep, scale, 0).astype(dtype)


def dropout_forward(
    x: np.ndarray,
    key: np.uint64,
    threshold: np.uint32,
    scale: np.floating,
    y: np.ndarray,
    mask: np.ndarray,
) -> np.ndarray:
    mask[...] = _mask(key, threshold, scale, x.shape, x.dtype)
    y[...] = x * mask
    return y


def bias_relu_dropout(
    z: np.ndarray,
    b: np.ndarray,
    key: np.uint64,
    threshold: np.uint32,
    scale: np.floating,
) -> np.ndarray:
    z[...] = np.maximum(z + b, 0) * _mask(key, threshold, scale, z.shape, z.dtype)
    return z


def relu_dropout_backward(
    dout: np.ndarray, y: np.ndarray, scale: np.floating, dz: np.ndarray, db: np.ndarray
) -> np.ndarray:
    dz[...] = dout * scale * (y > 0)
    db[...] = np.sum(dz, axis=0)
    return dz


# ------------------------------------------------------------------ optimizers, loss
def adam_update(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    alpha: float,
) -> None:
    """``kernels.optim.adam_update``: Adam with its flushes, in place on p, m, v.

    Moments below ``tiny / (1 - beta)`` become 0, ``g * g`` is 0 for ``|g| <
    sqrt(tiny)``, and a step ``m / (sqrt(v) + eps)`` below ``tiny / alpha`` is
    dropped (``kernels.optim`` says why).
    """
    dt = p.dtype.type
    tiny = float(np.finfo(p.dtype).tiny)
    m += dt(1 - beta_1) * (g - m)
    m[np.abs(m) < tiny / (1 - beta_1)] = 0
    g_sq = np.where(np.abs(g) < np.sqrt(tiny), 0, g).astype(p.dtype)
    v += dt(1 - beta_2) * (g_sq * g_sq - v)
    v[v < tiny / (1 - beta_2)] = 0
    ratio = m / (np.sqrt(v) + dt(epsilon))
    if alpha > 0:
        ratio[np.abs(ratio) < tiny / alpha] = 0
    p -= dt(alpha) * ratio


def flush_below(a: np.ndarray, floor: float) -> np.ndarray:
    """``kernels.optim.flush_below``: entries with ``|a| < floor`` become 0."""
    a[np.abs(a) < floor] = 0
    return a


def softmax_cross_entropy_labels(
    z: np.ndarray, labels: np.ndarray, on: np.floating, off: np.floating, dz: np.ndarray
) -> float:
    """``kernels.losses.softmax_cross_entropy_labels``: mean cross-entropy of
    ``softmax(z)`` against targets ``on`` at each label and ``off`` elsewhere, and
    its gradient written into ``dz``."""
    n, c = z.shape
    y = np.full((n, c), off, dtype=z.dtype)
    y[np.arange(n), labels] = on
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    dz[...] = (np.exp(log_p) * y.sum(axis=1, keepdims=True) - y) / n
    return -float(np.sum(y * log_p, dtype=np.float64) / n)


# ------------------------------------------- spec-level entry points (the layers')
def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: tuple[int, int],
    padding: str,
    keep_cols: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``kernels.conv.conv2d``: ``(y, cols)`` with Keras' padding rule."""
    n, h, wd, _ = x.shape
    kh, kw, c, _ = w.shape
    ho, wo, pt, pl = window_placement(h, wd, (kh, kw), strides, padding)
    cols = np.empty((n * ho * wo, kh * kw * c), dtype=x.dtype)
    y, cols = conv2d_forward(x, w, b, *strides, pt, pl, ho, wo, cols)
    return y, cols if keep_cols else None


def conv2d_grads(
    dout: np.ndarray,
    x: np.ndarray,
    cols: np.ndarray,
    w: np.ndarray,
    strides: tuple[int, int],
    padding: str,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``kernels.conv.conv2d_grads``: ``(dx, dw, db)`` of :func:`conv2d`."""
    _, _, pt, pl = window_placement(
        x.shape[1], x.shape[2], w.shape[:2], strides, padding
    )
    return conv2d_backward(dout, x, cols, w, *strides, pt, pl, need_dx)


def max_pool2d(
    x: np.ndarray, pool_size: tuple[int, int], strides: tuple[int, int], padding: str
) -> tuple[np.ndarray, np.ndarray]:
    """``kernels.pool.max_pool2d``: ``(y, argmax)``."""
    n, h, w, c = x.shape
    ho, wo, pt, pl = window_placement(h, w, pool_size, strides, padding)
    y = np.empty((n, ho, wo, c), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.int32)
    return maxpool_forward(x, *pool_size, *strides, pt, pl, y, argmax)


def max_pool2d_backward(
    dout: np.ndarray,
    argmax: np.ndarray,
    x_shape: tuple[int, ...],
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> np.ndarray:
    """``kernels.pool.max_pool2d_backward``."""
    _, _, pt, pl = window_placement(x_shape[1], x_shape[2], pool_size, strides, padding)
    dx = np.empty(x_shape, dtype=dout.dtype)
    return maxpool_backward(dout, argmax, *pool_size, *strides, pt, pl, dx)


def avg_pool2d(
    x: np.ndarray, pool_size: tuple[int, int], strides: tuple[int, int], padding: str
) -> np.ndarray:
    """``kernels.pool.avg_pool2d``."""
    n, h, w, c = x.shape
    ho, wo, pt, pl = window_placement(h, w, pool_size, strides, padding)
    y = np.empty((n, ho, wo, c), dtype=x.dtype)
    return avgpool_forward(x, *pool_size, *strides, pt, pl, y)


def avg_pool2d_backward(
    dout: np.ndarray,
    x_shape: tuple[int, ...],
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> np.ndarray:
    """``kernels.pool.avg_pool2d_backward``."""
    _, _, pt, pl = window_placement(x_shape[1], x_shape[2], pool_size, strides, padding)
    dx = np.empty(x_shape, dtype=dout.dtype)
    return avgpool_backward(dout, *pool_size, *strides, pt, pl, dx)


def dropout(
    x: np.ndarray, key: np.uint64, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """``kernels.dropout.dropout``: ``(y, mask)``, ``mask = [u >= t] / (1 - rate)``."""
    threshold = np.uint32(min(round(rate * 2.0**32), 2**32 - 1))
    mask = _mask(key, threshold, 1.0 / (1.0 - rate), x.shape, x.dtype)
    return x * mask, mask
