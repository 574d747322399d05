"""The subsampling layer of Bouvrie's "Notes on Convolutional Neural Networks", as seed 003 quotes it.

    y[n, c] = f(beta[c] * down(x[n, c]) + b[c])         (003: a multiplicative bias beta and an additive bias b
                                                          per output map)

Choices, documented because the seed leaves them open:
- down(.) SUMS each distinct scale x scale block ("对输入图像的不同nxn的块的所有像素进行求和", 003; the Notes say
  the same), so down(x)[i, j] = sum_{s, t < scale} x[i*scale + s, j*scale + t]. (DeepLearnToolbox instead
  averages and has no beta, b or f; that is mean pooling, reference.pooling.meanpool2d.) Rows and columns beyond
  the last whole block are not read (floor, as frameworks' pooling) and get gradient 0.
- f is the logistic sigmoid, the Notes' f (and the toolbox's sigm elsewhere), so f'(u) = f(u) (1 - f(u)).
  The layer is therefore not affine in any argument.

Backward with delta = dE/dy * f'(u), u = beta * down(x) + b (the Notes' delta^l = f'(u^l) o (...)):

    dE/db[c]    = sum_n sum_i sum_j delta[n, c, i, j]
    dE/dbeta[c] = sum_n sum_i sum_j delta[n, c, i, j] * down(x)[n, c, i, j]
    dE/dx[n, c, i*scale + s, j*scale + t] = beta[c] * delta[n, c, i, j]     (upsample by copying: the sum's
                                                                              adjoint; no division, unlike mean)
"""
from __future__ import annotations

import numpy as np

from .activations import sigmoid


def down(x: np.ndarray, scale: int) -> np.ndarray:
    """d[n, c, i, j] = sum_{s < scale} sum_{t < scale} x[n, c, i*scale + s, j*scale + t]"""
    N, C, H, W = x.shape
    Ho, Wo = H // scale, W // scale
    d = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    for s in range(scale):
                        for t in range(scale):
                            d[n, c, i, j] += x[n, c, i * scale + s, j * scale + t]
    return d


def _pre_activation(x, beta, b, scale):
    """u[n, c, i, j] = beta[c] * down(x)[n, c, i, j] + b[c], and down(x)."""
    d = down(x, scale)
    u = np.zeros_like(d)
    N, C, Ho, Wo = d.shape
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    u[n, c, i, j] = beta[c] * d[n, c, i, j] + b[c]
    return u, d


def subsampling_forward(x, beta, b, scale):
    """y = sigmoid(beta * down(x) + b), beta and b per map (003)."""
    u, _ = _pre_activation(x, beta, b, int(scale))
    return sigmoid(u)


def subsampling_backward(dy, x, beta, b, scale):
    """(dE/dx, dE/dbeta, dE/db) from dE/dy; see the module docstring for the equations."""
    scale = int(scale)
    u, d = _pre_activation(x, beta, b, scale)
    f = sigmoid(u)
    N, C, Ho, Wo = d.shape
    dx = np.zeros_like(x, dtype=np.float64)
    dbeta = np.zeros(C)
    db = np.zeros(C)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    delta = dy[n, c, i, j] * f[n, c, i, j] * (1.0 - f[n, c, i, j])
                    db[c] += delta
                    dbeta[c] += delta * d[n, c, i, j]
                    for s in range(scale):
                        for t in range(scale):
                            dx[n, c, i * scale + s, j * scale + t] += beta[c] * delta
    return dx, dbeta, db
