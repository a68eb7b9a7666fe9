"""Pictures and sound of the benchmark reports: spectrogram / mask PNGs, explanation WAVs and plots.

Everything is written atomically into the report folder, so the page works offline from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.image import imsave  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from .._io import atomic_write  # noqa: E402
from ..audio import STFT, write_wav  # noqa: E402
from ..data.captions import UNRELATED_PROMPTS  # noqa: E402
from ..data.tensors import SpectrogramSet  # noqa: E402
from ..nn.adapters import using_phase  # noqa: E402
from .conditions import Condition, ground_truth_info  # noqa: E402

PathLike = Union[str, Path]


class Renderer:
    """Fast PNG pictures of spectrograms and masks (one reusable matplotlib figure per picture size)."""

    def __init__(self, sample_rate: int = 16000, hop_length: int = 186, size=(3.2, 1.9), dpi: int = 90,
                 mask_size=(150, 260)) -> None:
        self.plt = plt
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.size = size
        self.dpi = dpi
        self.mask_size = (int(mask_size[0]), int(mask_size[1]))
        self._figs: Dict[Any, Any] = {}

    def _figure(self, shape, kind: str, ylabel: str):
        key = (tuple(shape), kind)
        if key not in self._figs:
            fig, ax = self.plt.subplots(figsize=self.size, dpi=self.dpi)
            F_, T = shape
            top = self.sample_rate / 2000 if kind == "db" else F_
            extent = [0, T * self.hop_length / self.sample_rate, 0, top]
            cmap, vmin, vmax = ("magma", -80, 0) if kind == "db" else ("viridis", 0, 1)
            im = ax.imshow(np.zeros(shape), origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=vmin,
                           vmax=vmax, interpolation="nearest")
            ax.set_xlabel("time (s)", fontsize=7)
            ax.set_ylabel(ylabel, fontsize=7)
            ax.tick_params(labelsize=6)
            title = ax.set_title("", fontsize=7)
            fig.tight_layout(pad=0.3)
            self._figs[key] = (fig, ax, im, title)
        return self._figs[key]

    def save(self, image: Tensor, path: Path, kind: str = "mask", title: str = "", ylabel: str = "bin",
             ref: Optional[float] = None) -> Path:
        """Save a (F, T) map as PNG.

        ``kind="db"``: a small figure with axes, 20·log10 relative to ``ref`` (default: the map's
        maximum), 80 dB range; ``kind="mask"``: the map alone (values in [0, 1], viridis, low
        frequencies at the bottom), resampled to ``mask_size`` pixels, without a figure (~20× faster);
        ``kind="masked"``: a magnitude map such as M ⊙ X alone, in dB relative to ``ref`` (pass the
        input's maximum so that it shares the input picture's scale: removed parts turn black),
        magma, ``mask_size`` pixels.
        """
        a = image.detach().float().cpu().reshape(image.shape[-2], image.shape[-1]).numpy()
        if kind not in ("db", "mask", "masked"):
            raise ValueError(f"kind must be 'db', 'mask' or 'masked', got {kind!r}")
        if kind in ("db", "masked"):
            top = float(ref) if ref is not None else float(a.max())
            a = 20 * np.log10(np.maximum(a, 1e-8) / max(top, 1e-8))
        if kind == "db":
            fig, ax, im, t = self._figure(a.shape, kind, "frequency (kHz)")
            im.set_data(a)
            t.set_text(title)
            return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        lo, hi, cmap = (0.0, 1.0, "viridis") if kind == "mask" else (-80.0, 0.0, "magma")
        h, w = self.mask_size
        t = torch.from_numpy(np.clip(a, lo, hi).astype(np.float32))[None, None]
        a = torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0, 0]
        return atomic_write(path, lambda tmp: imsave(tmp, a.clamp(lo, hi).numpy(), cmap=cmap, vmin=lo, vmax=hi,
                                                     origin="lower", format="png"))

    def close(self) -> None:
        for fig, *_ in self._figs.values():
            self.plt.close(fig)
        self._figs.clear()



def write_examples(out: Path, media: Path, model: nn.Module, stft: STFT, test: SpectrogramSet, conds: List[Condition],
                    sets: Any, ex_idx: List[int], ex_masks, with_mel: bool,
                    progress: bool, ex_waves: Optional[Dict[Tuple[str, str, str], Tensor]] = None) -> List[Dict[str, Any]]:
    """Pictures (input, oracle, every method's mask) and WAVs (input, true source, every listenable
    explanation) of the example clips of every condition, under ``media/``; returns their index.

    ``sets`` gives each condition's clips and ground truth (``get(cond)``, ``ground_truth(cond)``: the
    harness's :class:`~captum_lmac.benchmark.harness.ConditionSets`)."""
    render = Renderer(stft.sample_rate, stft.hop_length)
    classes = list(test.classes)
    examples = []
    try:
        jobs = [(cond, k, i) for cond in conds for k, i in enumerate(ex_idx)]
        ex_by_cond: Dict[str, Dict[str, Any]] = {}
        for cond, k, i in tqdm(jobs, desc="report media", disable=not progress, leave=False):
            s = sets.get(cond)
            entry = ex_by_cond.setdefault(cond.name, {"condition": cond.name, "condition_label": cond.label,
                                                      "clips": []})
            base = f"{cond.name}_clip{i}"
            with torch.no_grad():
                with using_phase(model, s.phase[i : i + 1], s.waveform.shape[-1]):
                    pred = int(model(s.X[i : i + 1]).argmax(1))
            lab = int(s.y[i])
            clip: Dict[str, Any] = {
                "index": int(i), "label": lab, "pred": pred,
                "label_name": classes[lab] if lab < len(classes) else lab,
                "pred_name": classes[pred] if pred < len(classes) else pred,
            }
            render.save(s.X[i], media / f"{base}_input.png", kind="db", title="input |X| (dB)")
            write_wav(media / f"{base}_input.wav", s.waveform[i : i + 1], stft.sample_rate)
            clip["input_png"], clip["input_wav"] = f"media/{base}_input.png", f"media/{base}_input.wav"
            g = sets.ground_truth(cond)
            if g is not None:
                target_w, rest_w, what = g
                oracle = ground_truth_info((target_w[i : i + 1], rest_w[i : i + 1], what), stft)["oracle"]
                render.save(oracle[0], media / f"{base}_oracle.png", title="oracle mask")
                write_wav(media / f"{base}_target.wav", target_w[i : i + 1], stft.sample_rate)
                clip["oracle_png"], clip["target_wav"] = f"media/{base}_oracle.png", f"media/{base}_target.wav"
            methods = []
            names = [key[2] for key in ex_masks if key[1] == cond.name and key[0] == "stft"]
            names += [key[2] for key in ex_masks if key[1] == cond.name and key[0] == "mel" and key[2] not in names]
            for name in names:
                safe = "".join(ch if ch.isalnum() else ("p" if ch == "+" else "_") for ch in name).strip("_")
                item: Dict[str, Any] = {"name": name}
                M = ex_masks.get(("stft", cond.name, name))
                if M is not None:
                    mk = M[k : k + 1]
                    render.save(mk[0], media / f"{base}_{safe}.png",
                                title=f"{name}: mask (mean {float(mk.mean()):.2f})")
                    render.save(mk[0] * s.X[i], media / f"{base}_{safe}_masked.png", kind="masked",
                                ref=float(s.X[i].max()))
                    own = (ex_waves or {}).get(("stft", cond.name, name))  # a method that explains the clip itself
                    wav = own[k : k + 1] if own is not None else stft.listen(
                        s.X[i : i + 1], s.phase[i : i + 1], mk, length=s.waveform.shape[-1])
                    write_wav(media / f"{base}_{safe}.wav", wav, stft.sample_rate)
                    item["png"], item["wav"] = f"media/{base}_{safe}.png", f"media/{base}_{safe}.wav"
                    item["masked_png"] = f"media/{base}_{safe}_masked.png"
                    item["mask_mean"] = round(float(mk.mean()), 4)
                Mm = ex_masks.get(("mel", cond.name, name))
                if with_mel and Mm is not None:
                    render.save(Mm[k], media / f"{base}_{safe}_mel.png",
                                title=f"{name} (Mel): mean {float(Mm[k].mean()):.2f}", ylabel="mel band")
                    item["mel_png"] = f"media/{base}_{safe}_mel.png"
                    item["mel_mask_mean"] = round(float(Mm[k].mean()), 4)
                methods.append(item)
            clip["methods"] = methods
            entry["clips"].append(clip)
        examples = [ex_by_cond[c.name] for c in conds if c.name in ex_by_cond]
    finally:
        render.close()
    return examples



def _values(v: Sequence[Any]) -> np.ndarray:
    return np.asarray([np.nan if a is None else a for a in v], dtype=float)


def plot_cascading(result: Mapping[str, object], path, title: Optional[str] = None):
    """Plot SSIM vs randomisation depth for every method (mean and 95 % CI band; methods computed at
    some stages only as dashed markers with their CI) and each method's chance level (dotted: SSIM
    with another clip's explanation); save a PNG."""
    labels = list(result["stages"])
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(labels) + 2), 3.6))
    for name, r in result["methods"].items():
        mean = _values(r["mean"])
        ok = np.isfinite(mean)
        if not ok.all():  # computed at some stages only (e.g. refitted at the last stage): dashed
            (line,) = ax.plot(x[ok], mean[ok], marker="s", ls="--", label=name)
            ax.errorbar(x[ok], mean[ok], yerr=[mean[ok] - _values(r["lo"])[ok], _values(r["hi"])[ok] - mean[ok]],
                        fmt="none", ecolor=line.get_color(), alpha=0.5)
        else:
            (line,) = ax.plot(x, mean, marker="o", label=name)
            ax.fill_between(x, _values(r["lo"]), _values(r["hi"]), alpha=0.2)
        chance = r.get("chance")
        if chance is not None and np.isfinite(chance):
            ax.axhline(chance, color=line.get_color(), ls=":", lw=1, alpha=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("randomised (cascading, from the logits down)")
    ax.set_ylabel("SSIM(original, randomised)\n(dotted: another clip's explanation)")
    ax.set_title(title or f"Cascading model randomisation (n = {result.get('n')})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out



def similarity_scatter_plot(corr: Dict[str, Any], path: PathLike, title: str = "") -> Path:
    """Scatter plots of mask mean vs prompt–audio similarity, one panel per method (PNG)."""
    names = list(corr["methods"])
    sims = np.asarray(corr["similarity"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        m = corr["methods"][name]
        ax.scatter(sims, np.asarray(m["mask_mean"]), s=6, alpha=0.5)
        ax.set_xlabel("prompt–audio similarity t·a")
        ax.set_ylabel("mask mean")
        ax.set_title(f"{name}: Pearson {m['pearson']:.2f}, Spearman {m['spearman']:.2f}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def zeroshot_example_plot(
    zs: Any, lmac_zs: Any, X: Tensor, y: Tensor, path: PathLike, n: int = 4,
    unrelated: Sequence[str] = UNRELATED_PROMPTS[:2],
) -> Path:
    """Log spectrograms and LMAC-ZS masks for the true-class prompt and unrelated prompts (PNG).

    Clips are evenly spaced over ``X`` (fold 5 is ordered by class, so several classes appear).
    """
    idx = torch.linspace(0, X.shape[0] - 1, n).long()
    Xs, ys = X[idx], y[idx]
    prompts = zs.prompts + list(unrelated)
    k = len(zs.prompts)
    masks = [lmac_zs.attribute(Xs, target=ys.tolist(), prompts=prompts)]
    masks += [lmac_zs.attribute(Xs, target=k + i, prompts=prompts) for i in range(len(unrelated))]
    fig, axes = plt.subplots(n, 2 + len(unrelated), figsize=(3.6 * (2 + len(unrelated)), 2.4 * n), squeeze=False)
    for r in range(n):
        panels = [(torch.log1p(Xs[r, 0]), "log(1+|X|)"), (masks[0][r, 0], prompts[int(ys[r])])]
        panels += [(masks[1 + i][r, 0], u) for i, u in enumerate(unrelated)]
        for c, (img, ttl) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(img.numpy(), origin="lower", aspect="auto", vmin=0 if c else None, vmax=1 if c else None)
            ax.set_title(f"'{ttl}' MM {float(img.mean()):.2f}" if c else ttl, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path



__all__ = ["Renderer", "write_examples", "plot_cascading", "similarity_scatter_plot", "zeroshot_example_plot"]
