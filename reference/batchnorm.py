"""Batch normalisation of (N, C, H, W) maps in training mode (batch statistics), forward and backward.

Per channel c, over the M = N H W values x[n, c, i, j] of the batch (torch's BatchNorm2d in training):

    mu_c      = 1/M sum_{n,i,j} x[n, c, i, j]
    var_c     = 1/M sum_{n,i,j} (x[n, c, i, j] - mu_c)^2          (biased: 1/M, as the forward uses it)
    sigma_c   = sqrt(var_c + eps)
    xhat      = (x[n, c, i, j] - mu_c) / sigma_c
    y[n, c, i, j] = gamma_c xhat[n, c, i, j] + beta_c

Backward, delta = dE/dy (mu_c and var_c depend on every x of the channel, which gives the two sums in dx):

    dE/dbeta_c  = sum_{n,i,j} delta[n, c, i, j]
    dE/dgamma_c = sum_{n,i,j} delta[n, c, i, j] xhat[n, c, i, j]
    dE/dx[n, c, i, j] = gamma_c / (M sigma_c) (M delta[n, c, i, j] - dE/dbeta_c - xhat[n, c, i, j] dE/dgamma_c)

Derivation: dxhat = gamma delta; dE/dvar = sum dxhat (x - mu) (-1/2) sigma^-3; dE/dmu = -sum dxhat / sigma
(the dvar/dmu term is -2/M sum (x - mu) = 0); dE/dx = dxhat / sigma + dE/dvar 2 (x - mu) / M + dE/dmu / M,
which collects into the line above. The running statistics (evaluation mode) are not part of training's gradient.
"""
from __future__ import annotations

import numpy as np


def batch_statistics(x, eps):
    """(mu, sigma) per channel: two passes, the mean first, then the mean of squared deviations."""
    N, C, H, W = x.shape
    M = N * H * W
    mu, sigma = np.zeros(C), np.zeros(C)
    for c in range(C):
        total = 0.0
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    total += x[n, c, i, j]
        mu[c] = total / M
        squares = 0.0
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    squares += (x[n, c, i, j] - mu[c]) ** 2
        sigma[c] = np.sqrt(squares / M + eps)
    return mu, sigma


def batchnorm2d_forward(x, gamma, beta, eps=1e-5):
    """y[n, c, i, j] = gamma_c (x[n, c, i, j] - mu_c) / sqrt(var_c + eps) + beta_c"""
    N, C, H, W = x.shape
    mu, sigma = batch_statistics(x, eps)
    y = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    y[n, c, i, j] = gamma[c] * (x[n, c, i, j] - mu[c]) / sigma[c] + beta[c]
    return y


def batchnorm2d_backward(dy, x, gamma, beta, eps=1e-5):
    """dx = gamma / (M sigma) (M delta - sum delta - xhat sum delta xhat); dgamma = sum delta xhat;
    dbeta = sum delta (sums over n, i, j per channel). Returns (dx, dgamma, dbeta)."""
    N, C, H, W = x.shape
    M = N * H * W
    mu, sigma = batch_statistics(x, eps)
    xhat = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    xhat[n, c, i, j] = (x[n, c, i, j] - mu[c]) / sigma[c]
    dgamma, dbeta = np.zeros(C), np.zeros(C)
    for c in range(C):
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    dbeta[c] += dy[n, c, i, j]
                    dgamma[c] += dy[n, c, i, j] * xhat[n, c, i, j]
    dx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    dx[n, c, i, j] = gamma[c] / (M * sigma[c]) * (
                        M * dy[n, c, i, j] - dbeta[c] - xhat[n, c, i, j] * dgamma[c])
    return dx, dgamma, dbeta
