"""Figures a run writes into its workdir (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def _as_points(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  if x.shape[1] == 1:
    x = np.concatenate([x, np.zeros_like(x)], axis=1)
  return x[:, :2]


def _image_grid(x: np.ndarray, ncol: int = 8) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim == 3:
    x = x[..., None]
  n, h, w, c = x.shape
  nrow = int(np.ceil(n / ncol))
  out = np.ones((nrow * h, ncol * w, c))
  for i in range(n):
    r, col = divmod(i, ncol)
    out[r * h:(r + 1) * h, col * w:(col + 1) * w] = x[i]
  out = np.clip((out + 1) / 2, 0, 1)  # data in [-1, 1]
  return out[..., 0] if c == 1 else out


def _is_image(x: np.ndarray) -> bool:
  return x.ndim == 4 or (x.ndim == 3 and min(x.shape[1:]) > 3)


def samples_figure(path: str, samples: np.ndarray, real: Optional[np.ndarray] = None,
                   *, title: str = '') -> None:
  """Scatter of generated samples over the data (2-D), or an image grid."""
  fig, ax = plt.subplots(figsize=(5, 5))
  if _is_image(samples):
    ax.imshow(_image_grid(samples[:64]), cmap='gray')
    ax.axis('off')
  else:
    if real is not None:
      r = _as_points(real)
      ax.scatter(r[:, 0], r[:, 1], s=4, c='0.6', label='data', alpha=0.6)
    s = _as_points(samples)
    ax.scatter(s[:, 0], s[:, 1], s=2, c='tab:red', label='samples', alpha=0.5)
    ax.legend(loc='upper right', markerscale=4)
    ax.set_aspect('equal')
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def flow_figure(path: str, before: np.ndarray, after: np.ndarray,
                real: Optional[np.ndarray] = None, *, title: str = '') -> None:
  """Particles before and after one outer loop's flow (arrows for 2-D data)."""
  if _is_image(before):
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, x, name in zip(axes, (before, after), ('before', 'after')):
      ax.imshow(_image_grid(x[:64]), cmap='gray')
      ax.set_title(f'particles {name} the flow')
      ax.axis('off')
  else:
    fig, ax = plt.subplots(figsize=(5, 5))
    if real is not None:
      r = _as_points(real)
      ax.scatter(r[:, 0], r[:, 1], s=4, c='0.75', label='data')
    b, a = _as_points(before), _as_points(after)
    ax.quiver(b[:, 0], b[:, 1], a[:, 0] - b[:, 0], a[:, 1] - b[:, 1], angles='xy',
              scale_units='xy', scale=1, width=0.002, color='0.3', alpha=0.6)
    ax.scatter(b[:, 0], b[:, 1], s=5, c='tab:blue', label='before')
    ax.scatter(a[:, 0], a[:, 1], s=5, c='tab:red', label='after')
    ax.legend(loc='upper right', markerscale=3)
    ax.set_aspect('equal')
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def grid_png(path: str, images: np.ndarray, *, ncol: int = 8) -> None:
  """Images ``[N, H, W(, C)]`` in [-1, 1] as one PNG grid, one pixel per pixel."""
  plt.imsave(path, _image_grid(images, ncol), cmap='gray', vmin=0, vmax=1)


def loss_curves(path: str, records: Sequence[Mapping[str, Any]]) -> None:
  """Every ``train_*loss*`` series of a run's metrics records against the outer loop."""
  series = {}
  for r in records:
    for k, v in r.items():
      if k.startswith('train_') and 'loss' in k and isinstance(v, (int, float)):
        series.setdefault(k[6:], []).append((r['loop'], v))
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, pts in sorted(series.items()):
    loops, vals = zip(*pts)
    ax.plot(loops, vals, label=name)
  ax.set_xlabel('outer loop')
  ax.set_ylabel('loss')
  if series:
    ax.legend()
    if all(v > 0 for pts in series.values() for _, v in pts):
      ax.set_yscale('log')  # D and G losses differ by orders of magnitude
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def progress_figures(workdir: str, loop: int, grid: Optional[np.ndarray],
                     records: Sequence[Mapping[str, Any]]) -> None:
  """``grids/loop_<loop>.png`` (when ``grid`` images are given) and ``losses.png``
  (when the run has logged ``records``)."""
  if grid is not None:
    os.makedirs(os.path.join(workdir, 'grids'), exist_ok=True)
    grid_png(os.path.join(workdir, 'grids', f'loop_{loop:06d}.png'), grid)
  if records:
    loss_curves(os.path.join(workdir, 'losses.png'), records)
