"""Pictures of explanations: spectrogram, mask and masked spectrogram side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from ._io import atomic_write  # noqa: E402


def _db(X: Tensor) -> Tensor:
    return 20 * torch.log10(X.clamp_min(1e-5))


def plot_explanation(
    X: Tensor,
    masks: Union[Tensor, Sequence[Tensor]],
    path: Union[str, Path],
    sample_rate: int = 16000,
    hop_length: int = 186,
    titles: Optional[Sequence[str]] = None,
    suptitle: str = "",
) -> Path:
    """Save a PNG: the input spectrogram (dB), then for each mask the mask and the masked spectrogram.

    Args:
        X: One linear magnitude spectrogram (1, F, T) or (F, T).
        masks: One mask or a list of masks with the shape of X, values in [0, 1].
        path: PNG path (written atomically).
        sample_rate, hop_length: For the time and frequency axes.
        titles: A title per mask (method names).
    """
    X = X.detach().cpu().reshape(X.shape[-2], X.shape[-1])
    if torch.is_tensor(masks):
        masks = [masks]
    masks = [m.detach().cpu().reshape(X.shape) for m in masks]
    titles = list(titles or [f"mask {i}" for i in range(len(masks))])
    F_, T = X.shape
    extent = [0, T * hop_length / sample_rate, 0, sample_rate / 2000]
    rows = 1 + len(masks)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 2.2 * rows), squeeze=False)
    db = _db(X)
    vmax = float(db.max())
    vmin = vmax - 80
    kw = dict(origin="lower", aspect="auto", extent=extent)
    axes[0, 0].imshow(db.numpy(), cmap="magma", vmin=vmin, vmax=vmax, **kw)
    axes[0, 0].set_title("input |X| (dB)")
    axes[0, 1].axis("off")
    for i, (m, t) in enumerate(zip(masks, titles), start=1):
        axes[i, 0].imshow(m.numpy(), cmap="viridis", vmin=0, vmax=1, **kw)
        axes[i, 0].set_title(f"{t}: mask (mean {float(m.mean()):.2f})")
        axes[i, 1].imshow(_db(m * X).numpy(), cmap="magma", vmin=vmin, vmax=vmax, **kw)
        axes[i, 1].set_title(f"{t}: M ⊙ X (dB)")
    for ax in axes.flat:
        ax.set_xlabel("time (s)")
        ax.set_ylabel("kHz")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return out
