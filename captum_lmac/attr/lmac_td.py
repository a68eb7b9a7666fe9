r"""LMAC-TD: listenable explanations masked in a learned time-domain representation
(Mancini, Paissan, Ravanelli, Subakan, ICASSP 2025)."""

from __future__ import annotations

import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor, nn

from .._utils import TargetType, eval_mode, format_target
from ..audio import STFT
from ..data.tensors import SpectrogramSet
from ..errors import InputError
from ..nn.adapters import SpectrogramInputClassifier, WaveformClassifier, waveform_model
from ..nn.decoders import layer_shape_spec
from ..nn.hooks import LayerSpec
from ..nn.loading import qualify_layers
from ..nn.td import MASKERS, LearnedDecoder, LearnedEncoder, PsiMap, autoencoder_si_sdr, tight_frame_
from ._learned import Batch, FitPlan, LearnedAttribution, iterate_batches, materialise

REFERENCE_STFT = dict(sample_rate=16000, n_fft=1024, hop_length=186, win_length=372, window="hamming")


def check_waveforms(inputs: Any, what: str = "inputs") -> Tuple[Tensor, bool]:
    """A tensor or 1-tuple of waveforms (N, samples), finite and non-empty. Returns ``(tensor, was_tuple)``."""
    was_tuple = isinstance(inputs, tuple)
    if was_tuple:
        if len(inputs) != 1:
            raise InputError(f"LMAC-TD explains one input tensor; got a tuple of {len(inputs)}")
        inputs = inputs[0]
    if not torch.is_tensor(inputs) or inputs.dim() != 2:
        shape = tuple(inputs.shape) if torch.is_tensor(inputs) else type(inputs).__name__
        raise InputError(f"{what} must be waveforms (N, samples), got {shape}")
    if inputs.shape[0] == 0 or inputs.shape[1] < 64:
        raise InputError(f"{what} are empty or too short (shape {tuple(inputs.shape)})")
    if not inputs.is_floating_point():
        raise InputError(f"{what} must be floating-point waveforms in [-1, 1], got {inputs.dtype}")
    if not torch.isfinite(inputs).all():
        raise InputError(f"{what} contain NaN or infinite samples")
    return inputs.float(), was_tuple


class LMACTD(LearnedAttribution):
    r"""LMAC-TD: a masker on a learned time-domain representation explains a waveform classifier.

    A learned encoder ``Enc = ReLU(Conv1d(1 → C, K, S))`` and decoder ``Dec = ConvTranspose1d(C → 1,
    K, S)`` (the reference: C 256, K 16, S 8) represent the waveform; a masker reads
    ``(1 − α)·Enc(x) + α·ψ(h)`` — ψ maps the classifier's hooked representations h to the encoder's
    grid — and outputs M ∈ [0, 1] (N, C, L). The explanation is ``x_in = Dec(Enc(x) ⊙ M)``, the
    masked-out part ``x_out = Dec(Enc(x) ⊙ (1 − M))``; the decoder is trained with

    .. math::
        λ_{in} CE(f(x_{in}), ŷ) − λ_{out} CE(f(x_{out}), ŷ) + λ_r \, mean\,\log(1 + |STFT(x_{in})|^2)

    (reference 5, 0.2, 6), ŷ = argmax f(x), f the frozen classifier on waveforms. α = 1 reads only
    the classifier's internals, α = 0 only the waveform (the classifier then enters through the loss
    alone, so ``layers`` may be empty).

    The encoder / decoder start as an exact-reconstruction filterbank
    (:func:`~captum_lmac.nn.td.tight_frame_`), are trained as an autoencoder on the training audio
    (``autoencoder_steps``; the reconstruction SI-SDR is recorded) and are frozen while the masker
    trains (``train_filterbank=True`` trains them jointly).

    Paper: https://arxiv.org/abs/2409.08655

    Args:
        forward_func (nn.Module): The classifier: a waveform model (N, samples) → logits, a
            :class:`~captum_lmac.WaveformClassifier` (its waveform model is used), or a spectrogram
            model X → logits with ``stft`` (wrapped in :class:`~captum_lmac.nn.adapters.SpectrogramInputClassifier`).
        layers (list or "auto"): Hooked layers of the waveform model feeding ψ (names relative to
            ``forward_func``; empty for α = 0).
        alpha (float): Mix of the encoder (0) and ψ (1) in the masker's input. Default 0.75.
        channels, kernel, stride (int): The learned representation (256, 16, 8).
        masker (str): ``"tcn"`` (dilated temporal convolutions, ≈ 0.5 M parameters, the CPU default)
            or ``"dual_path"`` (the reference's dual-path transformer), sized by ``masker_kwargs``.
        stft (STFT, optional): The STFT of the regulariser and of the STFT-domain view of the mask
            (default: the classifier's, else the reference STFT at 16 kHz).
        train_filterbank (bool): Train encoder / decoder with the masker.

    Examples::

        >>> td = LMACTD(waveform_net, layers=["block2", "block3", "block4"], alpha=0.75)
        >>> td.fit(waveforms_train, epochs=10, val=waveforms_val)
        >>> x_in = td.attribute(waveforms)                    # the explanation waveform, (N, samples)
        >>> out = td.explain(waveforms)                       # x_in, x_out, mask (N, C, L), stft_mask
    """

    kind = "lmac_td"
    history_keys = ("loss", "in", "out", "reg", "mask_mean")
    progress_keys = ("loss", "fid_in", "mask_mean")
    init_keys = ("alpha", "channels", "kernel", "stride", "masker", "masker_kwargs", "train_filterbank")

    def __init__(
        self,
        forward_func: nn.Module,
        layers: Union[str, Sequence[LayerSpec]] = (),
        alpha: float = 0.75,
        channels: int = 256,
        kernel: int = 16,
        stride: int = 8,
        masker: str = "tcn",
        masker_kwargs: Optional[Dict[str, Any]] = None,
        stft: Optional[STFT] = None,
        train_filterbank: bool = False,
    ) -> None:
        if not 0.0 <= float(alpha) <= 1.0:
            raise InputError(f"alpha must lie in [0, 1], got {alpha}")
        if masker not in MASKERS:
            raise InputError(f"masker must be one of {sorted(MASKERS)}, got {masker!r}")
        self.stft = stft or getattr(forward_func, "stft", None) or STFT(**REFERENCE_STFT)
        wave = waveform_model(forward_func, self.stft)
        if not isinstance(wave, nn.Module):
            raise InputError(f"LMAC-TD needs the classifier as an nn.Module, got {type(wave).__name__}")
        if isinstance(wave, SpectrogramInputClassifier) and not isinstance(layers, str):
            layers = qualify_layers(wave, list(layers))
        if isinstance(forward_func, WaveformClassifier) and not isinstance(layers, str):
            # names inside the WaveformClassifier ("model.block2") → names inside its waveform model
            layers = [l[len("model."):] if isinstance(l, str) and l.startswith("model.") else l for l in layers]
        if float(alpha) > 0 and not isinstance(layers, str) and not list(layers):
            raise InputError("alpha > 0 mixes in the classifier's representations: give layers (or alpha=0)")
        super().__init__(wave, layers)
        self.explained = forward_func
        self.alpha = float(alpha)
        self.channels, self.kernel, self.stride = int(channels), int(kernel), int(stride)
        self.masker = masker
        self.masker_kwargs = dict(masker_kwargs or {})
        self.train_filterbank = bool(train_filterbank)

    # ------------------------------------------------------------------ networks
    def _networks(self, layer_spec: List[dict]) -> nn.ModuleDict:
        nets = nn.ModuleDict({
            "encoder": LearnedEncoder(self.channels, self.kernel, self.stride),
            "decoder": LearnedDecoder(self.channels, self.kernel, self.stride),
            "masker": MASKERS[self.masker](self.channels, **self.masker_kwargs),
        })
        if layer_spec:
            nets["psi"] = PsiMap(layer_spec, self.channels)
        nets.layer_spec = layer_spec  # type: ignore[attr-defined]
        return nets

    def _config(self) -> Dict[str, Any]:
        return {"init": {k: getattr(self, k) for k in self.init_keys},
                "decoder": {"layer_spec": self._require_fitted().layer_spec}, "stft": self.stft.config()}

    def _build(self, config: Dict[str, Any]) -> None:
        self.decoder = self._networks(config["decoder"]["layer_spec"])
        self._freeze_filterbank()

    def _freeze_filterbank(self) -> None:
        for name in ("encoder", "decoder"):
            self.decoder[name].requires_grad_(self.train_filterbank)

    def _ensure_networks(self, x: Tensor, seed: int) -> None:
        if self.decoder is not None:
            return
        spec: List[dict] = []
        if self.layer_modules:
            with torch.no_grad(), eval_mode(self.model, freeze=True):
                _, feats = self.forward_with_features(x[:1])
            spec = layer_shape_spec(feats)
        self.decoder = self._networks(spec)
        tight_frame_(self.decoder["encoder"], self.decoder["decoder"], seed=seed)

    # ------------------------------------------------------------------ the explanation
    def _masks(self, x: Tensor, feats: Optional[List[Tensor]]) -> Tuple[Tensor, Tensor]:
        """(Enc(x), M) for waveforms x and the classifier's hooked outputs on them."""
        h = self.decoder["encoder"](x)
        inp = h
        if self.alpha > 0:
            psi = self.decoder["psi"](feats, h.shape[-1])
            inp = (1 - self.alpha) * h + self.alpha * psi
        return h, torch.sigmoid(self.decoder["masker"](inp))

    def _forward(self, x: Tensor) -> Dict[str, Tensor]:
        with torch.no_grad():
            logits, feats = self.forward_with_features(x)
        h, M = self._masks(x, feats)
        dec = self.decoder["decoder"]
        return {"logits": logits, "mask": M, "x_in": dec(h * M, x.shape[-1]), "x_out": dec(h * (1 - M), x.shape[-1])}

    def _log_power(self, x: Tensor) -> Tensor:
        return torch.log1p(self.stft.magnitude(x).pow(2))

    # ------------------------------------------------------------------ training
    def fit(
        self,
        batches: Any,
        epochs: int = 10,
        batch_size: int = 8,
        lr: float = 1e-3,
        weight_decay: float = 2e-6,
        lambda_in: float = 5.0,
        lambda_out: float = 0.2,
        lambda_reg: float = 6.0,
        autoencoder_steps: int = 100,
        val: Optional[Any] = None,
        seed: int = 0,
        progress: bool = True,
    ) -> Dict[str, Any]:
        r"""Pretrain the filterbank as an autoencoder, then train ψ and the masker on the frozen classifier.

        Args:
            batches: Training waveforms (N, samples) (shuffled into ``batch_size`` batches), a
                :class:`SpectrogramSet` (its waveforms), or an iterable of waveform batches.
            epochs (int): Passes over the data.
            batch_size (int): Clips per batch.
            lr, weight_decay (float): Adam settings (reference 2e-4, 2e-6; the small masker trains
                faster with 1e-3).
            lambda_in, lambda_out, lambda_reg (float): Loss weights (reference 5, 0.2, 6).
            autoencoder_steps (int): Autoencoder steps (negative SI-SDR) on the training audio
                before the masker is trained (from the exact tight-frame initialisation).
            val: Validation waveforms (tensor or SpectrogramSet); the epoch with the lowest
                validation loss is kept.
            seed (int): Seed of the initialisation and the batch order.
            progress (bool): Show a progress bar.

        Returns:
            dict: per-epoch ``loss``, ``in``, ``out``, ``reg``, ``mask_mean`` and ``val_*``, plus
            ``autoencoder_si_sdr`` (dB, on the validation clips or the training clips),
            ``autoencoder_seconds``, ``best_epoch``, ``seconds``, ``decoder_parameters``.
        """
        if int(epochs) < 1 or int(batch_size) < 1:
            raise InputError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
        self._fit_settings = {"lambdas": (float(lambda_in), float(lambda_out), float(lambda_reg)),
                              "autoencoder_steps": int(autoencoder_steps), "lr": float(lr)}
        return self._run_fit(batches, epochs, batch_size, lr, weight_decay, val, seed, progress)

    @staticmethod
    def _as_waveforms(data: Any) -> Any:
        return data.waveform if isinstance(data, SpectrogramSet) else data

    def _fit_setup(self, data: Any, val: Any, batch_size: int, seed: int, progress: bool) -> FitPlan:
        data = materialise(self._as_waveforms(data))
        first = next(iter(iterate_batches(data, batch_size, torch.Generator().manual_seed(seed))), None)
        if first is None:
            raise InputError("fit got no training batches")
        x0, _ = check_waveforms(first.X, "training clips")
        self._resolve_auto(Batch(x0))
        self._ensure_networks(x0, seed)
        val_x = None if val is None else check_waveforms(self._as_waveforms(val), "validation clips")[0]
        hist: Dict[str, Any] = {}
        t0 = time.time()
        self._train_autoencoder(data, batch_size, seed)
        self._freeze_filterbank()
        probe = val_x if val_x is not None else x0
        hist["autoencoder_si_sdr"] = float(autoencoder_si_sdr(self.decoder["encoder"], self.decoder["decoder"],
                                                              probe[:32]).mean())
        hist["autoencoder_seconds"] = time.time() - t0
        validate = None
        if val_x is not None:
            def validate() -> Dict[str, float]:
                return self.evaluate(val_x)
        return FitPlan(batches=lambda gen: iterate_batches(data, batch_size, gen), validate=validate, history=hist)

    def _train_autoencoder(self, data: Any, batch_size: int, seed: int) -> None:
        steps = self._fit_settings["autoencoder_steps"]
        if steps <= 0:
            return
        enc, dec = self.decoder["encoder"], self.decoder["decoder"]
        params = list(enc.parameters()) + list(dec.parameters())
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=1e-4)
        gen = torch.Generator().manual_seed(seed + 1)
        done = 0
        while done < steps:
            for batch in iterate_batches(data, batch_size, gen):
                x = batch.X.float()
                y = dec(enc(x), x.shape[-1])
                xc, yc = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
                a = (xc * yc).sum(-1, keepdim=True) / xc.pow(2).sum(-1, keepdim=True).clamp_min(1e-8)
                t = a * xc
                si_sdr = 10 * torch.log10(t.pow(2).sum(-1).clamp_min(1e-12) / (yc - t).pow(2).sum(-1).clamp_min(1e-12))
                loss = -si_sdr.clamp(max=100.0).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                done += 1
                if done >= steps:
                    break

    def _loss_terms(self, x: Tensor) -> Dict[str, Tensor]:
        out = self._forward(x)
        y_hat = out["logits"].argmax(1)
        l_in = F.cross_entropy(self.model(out["x_in"]), y_hat)
        l_out = F.cross_entropy(self.model(out["x_out"]), y_hat)
        reg = self._log_power(out["x_in"]).mean()
        w_in, w_out, w_reg = self._fit_settings["lambdas"]
        return {"loss": w_in * l_in - w_out * l_out + w_reg * reg, "in": l_in, "out": l_out, "reg": reg,
                "mask_mean": out["mask"].mean().detach()}

    def _train_step(self, batch: Batch) -> Tuple[Dict[str, Tensor], int]:
        x, _ = check_waveforms(batch.X, "training clips")
        return self._loss_terms(x), x.shape[0]

    @torch.no_grad()
    def evaluate(self, x: Tensor, batch_size: int = 8) -> Dict[str, float]:
        """Loss terms, Fid-In, AI and mask mean of the current masker on waveforms x (no training)."""
        x, _ = check_waveforms(x)
        self._require_fitted().eval()
        w_in, w_out, w_reg = getattr(self, "_fit_settings", {"lambdas": (5.0, 0.2, 6.0)})["lambdas"]
        acc = {k: 0.0 for k in ("loss", "in", "out", "reg", "fid_in", "ai", "mask_mean")}
        with eval_mode(self.model, freeze=True):
            for s in range(0, x.shape[0], batch_size):
                xb = x[s : s + batch_size]
                out = self._forward(xb)
                y = out["logits"].argmax(1)
                z_in, z_out = self.model(out["x_in"]), self.model(out["x_out"])
                l_in = F.cross_entropy(z_in, y, reduction="sum")
                l_out = F.cross_entropy(z_out, y, reduction="sum")
                reg = self._log_power(out["x_in"]).flatten(1).mean(1).sum()
                acc["in"] += float(l_in)
                acc["out"] += float(l_out)
                acc["reg"] += float(reg)
                acc["loss"] += float(w_in * l_in - w_out * l_out + w_reg * reg)
                acc["fid_in"] += float((z_in.argmax(1) == y).sum())
                p, p_in = out["logits"].softmax(1).gather(1, y[:, None]), z_in.softmax(1).gather(1, y[:, None])
                acc["ai"] += 100.0 * float((p_in > p).sum())
                acc["mask_mean"] += float(out["mask"].flatten(1).mean(1).sum())
        return {k: v / x.shape[0] for k, v in acc.items()}

    # ------------------------------------------------------------------ attribution
    @torch.no_grad()
    def explain(self, inputs: Any, batch_size: int = 8) -> Dict[str, Tensor]:
        r"""Everything LMAC-TD gives for waveforms (N, samples).

        Returns:
            dict: ``x_in`` (the explanation, (N, samples)), ``x_out`` (the masked-out part),
            ``mask`` (N, C, L) in the learned domain, ``stft_mask`` (N, 1, F, T) =
            ``clamp(|STFT(x_in)| / |STFT(x)|, 0, 1)`` — an STFT-domain view of the mask for figures
            and Sparseness / Complexity — and ``logits`` of the classifier on x.
        """
        x, _ = check_waveforms(inputs)
        self._require_fitted().eval()
        parts: Dict[str, List[Tensor]] = {k: [] for k in ("x_in", "x_out", "mask", "logits")}
        with eval_mode(self.model, freeze=True):
            for s in range(0, x.shape[0], batch_size):
                out = self._forward(x[s : s + batch_size])
                for k in parts:
                    parts[k].append(out[k])
        res = {k: torch.cat(v) for k, v in parts.items()}
        X, X_in = self.stft.magnitude(x), self.stft.magnitude(res["x_in"])
        res["stft_mask"] = (X_in / X.clamp_min(1e-8)).clamp(0.0, 1.0)
        return res

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        on_target_mismatch: str = "error",
        batch_size: int = 8,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""The explanation waveform ``x_in = Dec(Enc(x) ⊙ M)``: a tensor of the input's shape (N, samples).

        ``x_in`` is a sample-domain attribution: what of the signal the classifier needs for its
        decision, in the signal's own units (play it as it is). It has the input's shape, so
        ``captum.metrics.infidelity``, NoiseTunnel and Quantus run on it; :meth:`explain` also gives
        the masked-out part, the learned-domain mask and its STFT-domain view.

        Args:
            inputs: Waveforms (N, samples) or a 1-tuple.
            target: LMAC-TD explains the classifier's own decision: None (default), or targets that
                must equal it (``on_target_mismatch``: ``"error"``, ``"warn"``, ``"ignore"``).
            batch_size (int): Clips processed at once.
        """
        x, was_tuple = check_waveforms(inputs)
        out = self.explain(x, batch_size)
        pred = out["logits"].argmax(1).cpu()
        t = format_target(target, x.shape[0], int(out["logits"].shape[1]))
        if t is not None and not torch.equal(t, pred):
            bad = int((t != pred).nonzero()[0])
            msg = (f"target {int(t[bad])} for input {bad} is not the classifier's decision ({int(pred[bad])}); "
                   "LMAC-TD explains the predicted class (use target=None), or pass on_target_mismatch='warn'")
            if on_target_mismatch == "error":
                raise InputError(msg)
            if on_target_mismatch == "warn":
                warnings.warn(msg, stacklevel=2)
            elif on_target_mismatch != "ignore":
                raise InputError(f"on_target_mismatch must be 'error', 'warn' or 'ignore', got {on_target_mismatch!r}")
        x_in = out["x_in"].to(x.dtype)
        return (x_in,) if was_tuple else x_in

    def _copy_kwargs(self, model: nn.Module) -> Dict[str, Any]:
        return {**super()._copy_kwargs(model), "stft": self.stft}

    # ------------------------------------------------------------------ persistence
    @classmethod
    def _fingerprinted(cls, model: nn.Module) -> nn.Module:
        """The user's classifier behind the waveform view (the same whichever way it was passed)."""
        if isinstance(model, (WaveformClassifier, SpectrogramInputClassifier)):
            return model.model
        return model

    @classmethod
    def _init_kwargs(cls, model: nn.Module, meta: Dict[str, Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        init = super()._init_kwargs(model, meta, kwargs)
        if "stft" not in init and "stft" in meta["config"]:
            init["stft"] = STFT(**meta["config"]["stft"])
        return init


__all__ = ["LMACTD", "check_waveforms", "REFERENCE_STFT"]
