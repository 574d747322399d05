"""Layer normalisation over the trailing dimensions of x (torch's LayerNorm), forward and backward.

x has leading dimensions (the rows: N, or N, C, ...) and trailing ones (the normalised shape, D values per row);
gamma and beta have the normalised shape. The loops below run over r (a row, the leading indices in row-major order)
and d (a position in the normalised shape, likewise): x[r, d] is x reshaped to (R, D).

    mu_r      = 1/D sum_d x[r, d]
    var_r     = 1/D sum_d (x[r, d] - mu_r)^2                      (biased, as torch normalises)
    sigma_r   = sqrt(var_r + eps),    xhat[r, d] = (x[r, d] - mu_r) / sigma_r
    y[r, d]   = gamma[d] xhat[r, d] + beta[d]

Backward, delta = dE/dy: gamma and beta are shared by the rows, the statistics by the positions of a row:

    dE/dbeta[d]  = sum_r delta[r, d]
    dE/dgamma[d] = sum_r delta[r, d] xhat[r, d]
    g[r, d]      = gamma[d] delta[r, d]                               (dE/dxhat)
    dE/dx[r, d]  = 1 / (D sigma_r) (D g[r, d] - sum_d' g[r, d'] - xhat[r, d] sum_d' g[r, d'] xhat[r, d'])

Batch normalisation's dx with the roles exchanged (statistics per row instead of per channel), except that gamma
varies along d, so it moves inside the sums (g = gamma delta) instead of factoring out.
"""
from __future__ import annotations

import numpy as np


def _rows(x, normalized_shape):
    """x viewed as (R, D): D = the product of the normalised shape, R = everything before it."""
    D = int(np.prod(normalized_shape, dtype=np.int64))
    return np.reshape(x, (-1, D)), D


def row_statistics(x2, eps):
    """(mu, sigma) per row of x2 (R, D): two passes, the mean first."""
    R, D = x2.shape
    mu, sigma = np.zeros(R), np.zeros(R)
    for r in range(R):
        total = 0.0
        for d in range(D):
            total += x2[r, d]
        mu[r] = total / D
        squares = 0.0
        for d in range(D):
            squares += (x2[r, d] - mu[r]) ** 2
        sigma[r] = np.sqrt(squares / D + eps)
    return mu, sigma


def layernorm_forward(x, gamma, beta, normalized_shape, eps=1e-5):
    """y[r, d] = gamma[d] (x[r, d] - mu_r) / sqrt(var_r + eps) + beta[d]"""
    x2, D = _rows(np.asarray(x, dtype=np.float64), normalized_shape)
    g, b = np.reshape(gamma, D), np.reshape(beta, D)
    mu, sigma = row_statistics(x2, eps)
    y = np.zeros_like(x2)
    for r in range(x2.shape[0]):
        for d in range(D):
            y[r, d] = g[d] * (x2[r, d] - mu[r]) / sigma[r] + b[d]
    return y.reshape(np.shape(x))


def layernorm_backward(dy, x, gamma, beta, normalized_shape, eps=1e-5):
    """dx[r, d] = 1 / (D sigma_r) (D g[r, d] - sum_d' g[r, d'] - xhat[r, d] sum_d' g[r, d'] xhat[r, d']),
    g = gamma delta; dgamma[d] = sum_r delta xhat; dbeta[d] = sum_r delta. Returns (dx, dgamma, dbeta)."""
    x2, D = _rows(np.asarray(x, dtype=np.float64), normalized_shape)
    dy2 = np.reshape(dy, x2.shape)
    gam = np.reshape(gamma, D)
    R = x2.shape[0]
    mu, sigma = row_statistics(x2, eps)
    xhat, g = np.zeros_like(x2), np.zeros_like(x2)
    for r in range(R):
        for d in range(D):
            xhat[r, d] = (x2[r, d] - mu[r]) / sigma[r]
            g[r, d] = gam[d] * dy2[r, d]
    dgamma, dbeta = np.zeros(D), np.zeros(D)
    for d in range(D):
        for r in range(R):
            dbeta[d] += dy2[r, d]
            dgamma[d] += dy2[r, d] * xhat[r, d]
    dx = np.zeros_like(x2)
    for r in range(R):
        sum_g, sum_g_xhat = 0.0, 0.0
        for d in range(D):
            sum_g += g[r, d]
            sum_g_xhat += g[r, d] * xhat[r, d]
        for d in range(D):
            dx[r, d] = (D * g[r, d] - sum_g - xhat[r, d] * sum_g_xhat) / (D * sigma[r])
    shape = tuple(normalized_shape)
    return dx.reshape(np.shape(x)), dgamma.reshape(shape), dbeta.reshape(shape)
