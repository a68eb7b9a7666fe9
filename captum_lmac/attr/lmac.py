"""L-MAC: Listenable Maps for Audio Classifiers (Paissan, Ravanelli, Subakan, ICML 2024)."""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor, nn

from .._utils import TargetType, eval_mode, format_target
from .._validate import check_number
from ..errors import InputError
from ..nn.decoders import MaskDecoder, layer_shape_spec
from ..nn.hooks import LayerSpec
from ..data.tensors import SpectrogramSet
from ..nn.adapters import bound_slice
from ..data.streaming import is_stream
from ._learned import Batch, FitPlan, LearnedAttribution, evaluate_stream, iterate_batches, materialise, unpack_inputs


def apply_mask(X: Tensor, M: Tensor, mask_domain: str = "linear") -> Tensor:
    """M ⊙ X (``"linear"``, the paper) or expm1(M · log1p X) (``"log1p"``, the released code)."""
    if mask_domain == "linear":
        return M * X
    if mask_domain == "log1p":
        return torch.expm1(M * torch.log1p(X.clamp_min(0)))
    raise InputError(f"mask_domain must be 'linear' or 'log1p', got {mask_domain!r}")


class LMAC(LearnedAttribution):
    r"""L-MAC: a decoder trained on a frozen classifier to output a listenable mask.

    The decoder reads the classifier's hidden representations at the given ``layers`` (forward
    hooks), U-Net style from deepest to shallowest, and outputs a mask M in [0, 1] on the (F, T)
    grid of the input X (the linear STFT magnitude for a :class:`~captum_lmac.SpectrogramClassifier`).
    It is trained so that the masked-in part ``M ⊙ X`` keeps the classifier's decision and the
    masked-out part ``(1 − M) ⊙ X`` loses it, with a sparsity penalty:

    .. math::
        λ_{in} CE(f(M ⊙ X), ŷ) − λ_{out} CE(f((1 − M) ⊙ X), ŷ) + λ_s \, mean|M|,

    with ŷ = argmax f(X). ``ISTFT((M ⊙ X) e^{jP})`` (:meth:`captum_lmac.STFT.listen`) is the
    listenable explanation.

    Paper: https://arxiv.org/abs/2403.13086

    Differences from the released reference code (on purpose): the L1 term is a mean, not
    multiplied by the batch size; the mask covers every frame of any input length (the reference
    decoder drops the last frames); the best validation epoch is kept (the reference always keeps
    the last); the mask multiplies |X| by default (``mask_domain="log1p"`` reproduces the
    reference's masking of log(1 + |X|)).

    Args:
        forward_func (nn.Module): The classifier, input X (N, 1, F, T) → logits (N, C).
        layers (list of nn.Module, str or Hook, or "auto"): Classifier layers whose outputs feed
            the decoder, shallowest first (the paper: the four deepest CNN14 blocks). 2-D maps
            (N, C, F', T'), 1-D sequences (N, C, T') / (N, T', C), tuples, dicts and model outputs,
            token sequences and chunks folded into the batch are read through
            :class:`~captum_lmac.attr.Hook`; ``"auto"`` picks them on the first training batch
            (:func:`~captum_lmac.attr.auto_layers`, printed); ``[]`` for a model that cannot be hooked
            (TorchScript): the decoder then reads the input only.
        hidden (int): Decoder width.
        use_input (bool): Let the decoder also read log(1 + |X|) for fine detail.
        mask_domain (str): ``"linear"`` or ``"log1p"`` (see above).
        sequence_layout (str, optional): ``"NCT"`` or ``"NTC"`` for 3-D outputs of layers given by
            name or module (default: inferred per layer; a :class:`~captum_lmac.attr.Hook` sets it
            for one layer).

    Examples::

        >>> lmac = LMAC(model, layers=[net.block2, net.block3, net.block4])
        >>> history = lmac.fit(X_train, epochs=10, val=X_val)
        >>> mask = lmac.attribute(X)                 # (N, 1, F, T) in [0, 1]
        >>> audio = stft.listen(X, phase, mask)      # what the classifier "heard"
        >>> lmac.save("lmac.pt"); lmac = LMAC.load("lmac.pt", model)
    """

    kind = "lmac"
    history_keys = ("loss", "in", "out", "l1", "guidance", "guided_fraction", "mask_mean")
    progress_keys = ("loss", "fid_in", "mask_mean")
    init_keys = ("hidden", "use_input", "mask_domain", "sequence_layout")

    def __init__(
        self,
        forward_func: nn.Module,
        layers: Sequence[LayerSpec],
        hidden: int = 32,
        use_input: bool = True,
        mask_domain: str = "linear",
        sequence_layout: Optional[str] = None,
    ) -> None:
        if sequence_layout not in (None, "NCT", "NTC"):
            raise InputError(f"sequence_layout must be 'NCT', 'NTC' or None (inferred), got {sequence_layout!r}")
        super().__init__(forward_func, layers, layout=sequence_layout)
        if mask_domain not in ("linear", "log1p"):
            raise InputError(f"mask_domain must be 'linear' or 'log1p', got {mask_domain!r}")
        self.hidden = int(hidden)
        self.use_input = bool(use_input)
        self.mask_domain = mask_domain
        self.sequence_layout = sequence_layout

    # ------------------------------------------------------------------ decoder
    def _build(self, config: Dict[str, Any]) -> None:
        d = config["decoder"]
        self.decoder = MaskDecoder(
            d["layer_spec"], d["out_freqs"], hidden=d["hidden"], use_input=d["use_input"],
        )

    def _ensure_decoder(self, X: Tensor) -> None:
        if self.decoder is not None:
            return
        with torch.no_grad(), eval_mode(self.model, freeze=True), bound_slice(self.model, 0, 1):
            _, feats = self.forward_with_features(X[:1])
        spec = layer_shape_spec(feats)  # hooked outputs arrive as (N, C, F', T') or (N, C, T')
        self.decoder = MaskDecoder(spec, X.shape[2], hidden=self.hidden, use_input=self.use_input)

    def _mask(self, X: Tensor) -> Tuple[Tensor, Tensor]:
        """Classifier logits on X and the decoder's mask (N, 1, F, T)."""
        with torch.no_grad():
            logits, feats = self.forward_with_features(X)
        return logits, torch.sigmoid(self.decoder(feats, X))

    # ------------------------------------------------------------------ training
    def _loss_terms(
        self, X: Tensor, X_clean: Optional[Tensor], lambdas: Dict[str, float], cct: float, guidance: str
    ) -> Dict[str, Tensor]:
        logits, M = self._mask(X)
        y_hat = logits.argmax(1)
        l_in = F.cross_entropy(self.model(apply_mask(X, M, self.mask_domain)), y_hat)
        l_out = F.cross_entropy(self.model(apply_mask(X, 1 - M, self.mask_domain)), y_hat)
        l1 = M.abs().mean()  # a mean: independent of the batch size
        total = lambdas["in"] * l_in - lambdas["out"] * l_out + lambdas["s"] * l1
        terms = {"in": l_in, "out": l_out, "l1": l1, "mask_mean": M.mean().detach(),
                 "guidance": torch.zeros(()), "guided_fraction": torch.zeros(())}
        if X_clean is not None and lambdas["g"] > 0:
            g, frac = self._guidance(X, X_clean, M, cct, guidance)
            total = total + lambdas["g"] * g
            terms["guidance"], terms["guided_fraction"] = g.detach(), frac
        terms["loss"] = total
        return terms

    def _guidance(self, X: Tensor, X_clean: Tensor, M: Tensor, cct: float, kind: str) -> Tuple[Tensor, Tensor]:
        """Guidance towards the clean source, only on samples whose M⊙X is already close to it (CCT)."""
        if X_clean.shape != X.shape:
            raise InputError(f"clean spectrogram shape {tuple(X_clean.shape)} differs from the mixture's {tuple(X.shape)}")
        masked = apply_mask(X, M, self.mask_domain)
        sim = F.cosine_similarity(masked.detach().flatten(1), X_clean.flatten(1), dim=1)
        keep = sim >= cct
        frac = keep.float().mean()
        if not bool(keep.any()):
            return M.sum() * 0.0, frac
        if kind == "l1":  # on log-compressed magnitudes, so the term's scale does not depend on loudness
            err = (torch.log1p(masked[keep]) - torch.log1p(X_clean[keep])).abs().mean()
        elif kind == "bce":
            peak = X_clean[keep].flatten(1).amax(1).view(-1, 1, 1, 1)
            oracle = (X_clean[keep] >= 0.35 * peak).float()
            err = F.binary_cross_entropy(M[keep].clamp(1e-6, 1 - 1e-6), oracle)
        else:
            raise InputError(f"guidance must be 'l1' or 'bce', got {kind!r}")
        return err, frac

    def fit(
        self,
        batches: Any,
        epochs: int = 10,
        batch_size: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 2e-6,
        lambda_in: float = 4.0,
        lambda_out: float = 0.2,
        lambda_s: float = 0.4,
        lambda_g: float = 0.0,
        cct: float = 0.7,
        guidance: str = "l1",
        val: Optional[Any] = None,
        seed: int = 0,
        progress: bool = True,
        *,
        checkpoint_dir: Optional[Any] = None,
        checkpoint_every: int = 1,
        checkpoint_steps: Optional[int] = None,
        resume: bool = False,
    ) -> Dict[str, Any]:
        r"""Train the decoder on a frozen classifier; return the per-epoch history.

        Args:
            batches: Training data: a tensor X (N, 1, F, T) (shuffled into ``batch_size`` batches),
                a pair ``(X_mix, X_clean)`` of tensors or a :class:`SpectrogramSet` with
                ``extra["clean_X"]`` (fine-tuning with guidance), or any re-iterable of batches /
                ``(X_mix, X_clean)`` tuples (list, DataLoader).
            epochs (int): Passes over ``batches``.
            batch_size (int): Batch size when ``batches`` is a tensor (reference: 16).
            lr (float): Adam learning rate (reference 2e-4 for the 237 M-parameter decoder; our
                small decoder trains faster with 1e-3). weight_decay (float): reference 2e-6.
            lambda_in, lambda_out, lambda_s (float): Loss weights (reference 4, 0.2, 0.4).
            lambda_g (float): Guidance weight for fine-tuning on (X_mix, X_clean) pairs (paper: 4, 16, 32).
            cct (float): Cosine-similarity threshold for applying guidance to a sample (0.6 or 0.7).
            guidance (str): ``"l1"``: mean |log1p(M⊙X_mix) − log1p(X_clean)|; ``"bce"``: BCE of M
                against the binarised clean spectrogram (X_clean ≥ 0.35·max).
            val: Validation inputs (tensor or SpectrogramSet); the epoch with the lowest validation
                loss is kept and Fid-In / mask mean / AI are logged.
            seed (int): Seed for the decoder's initialisation and the batch order.
            progress (bool): Show a progress bar.
            checkpoint_dir (path, optional): Write a resumable fit state there (``last.pt``: decoder,
                optimiser, RNG states, history; ``torch.load(weights_only=True)``) every
                ``checkpoint_every`` epochs, every ``checkpoint_steps`` steps and on SIGTERM / Ctrl-C
                (then :class:`~captum_lmac.errors.FitInterrupted` is raised).
            resume (bool): Continue the fit stored in ``checkpoint_dir`` exactly where it stopped
                (a missing checkpoint starts afresh). See :meth:`LearnedAttribution._run_fit` for
                streaming data and distributed (torchrun / DDP) fits.

        Returns:
            dict: lists per epoch (``loss``, ``in``, ``out``, ``l1``, ``guidance``,
            ``guided_fraction``, ``mask_mean`` and ``val_*`` when ``val`` is given), plus
            ``best_epoch``, ``seconds`` and ``decoder_parameters``.
        """
        lambda_in, lambda_out, lambda_s, lambda_g = (check_number(v, k, minimum=0.0) for k, v in (
            ("lambda_in", lambda_in), ("lambda_out", lambda_out), ("lambda_s", lambda_s), ("lambda_g", lambda_g)))
        cct = check_number(cct, "cct")
        if lambda_g > 0 and guidance not in ("l1", "bce"):
            raise InputError(f"guidance must be 'l1' or 'bce', got {guidance!r}")
        self._loss_settings = {"lambdas": {"in": lambda_in, "out": lambda_out, "s": lambda_s, "g": lambda_g},
                               "cct": cct, "guidance": guidance}
        return self._run_fit(batches, epochs, batch_size, lr, weight_decay, val, seed, progress,
                             checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                             checkpoint_steps=checkpoint_steps, resume=resume)

    def _fit_setup(self, data: Any, val: Any, batch_size: int, seed: int, progress: bool) -> FitPlan:
        data = materialise(data)
        first = next(iter(iterate_batches(data, batch_size, torch.Generator().manual_seed(seed))), None)
        if first is None:
            raise InputError("fit got no training batches")
        X0, _ = unpack_inputs(first.X, self.decoder.out_freqs if self.decoder is not None else None)
        self._resolve_auto(first)
        with self.bound(first.phase, first.length):
            self._ensure_decoder(X0)
        lambdas = self._loss_settings["lambdas"]
        val_X, val_phase, val_length = self._val_data(val) if not is_stream(val) else (None, None, None)
        validate = None
        if is_stream(val):
            def validate() -> Dict[str, float]:
                return evaluate_stream(val, lambda b: self._evaluate_batch(b, lambdas))
        elif val_X is not None:
            def validate() -> Dict[str, float]:
                with self.bound(val_phase, val_length):
                    return self.evaluate(val_X, lambdas)
        return FitPlan(batches=lambda gen: iterate_batches(data, batch_size, gen), validate=validate)

    def _evaluate_batch(self, batch: Batch, lambdas: Dict[str, float]) -> Dict[str, float]:
        with self.bound(batch.phase, batch.length):
            return self.evaluate(unpack_inputs(batch.X, self.decoder.out_freqs)[0], lambdas)

    def _train_step(self, batch: Batch) -> Tuple[Dict[str, Tensor], int]:
        X, _ = unpack_inputs(batch.X, self.decoder.out_freqs)
        X_clean = batch.clean
        settings = self._loss_settings
        if settings["lambdas"]["g"] > 0 and X_clean is None:
            raise InputError("lambda_g > 0 needs (X_mix, X_clean) training pairs")
        return self._loss_terms(X, X_clean, settings["lambdas"], settings["cct"], settings["guidance"]), X.shape[0]

    def finetune(
        self, pairs: Any, epochs: int = 5, lambda_g: float = 4.0, cct: float = 0.7, guidance: str = "l1", **kwargs
    ) -> Dict[str, Any]:
        """Fine-tuning stage for listening quality: :meth:`fit` on (X_mix, X_clean) pairs with guidance.

        Starts from the current (fitted) decoder. ``pairs`` is ``(X_mix, X_clean)`` tensors, a
        :class:`SpectrogramSet` of WHAM!-style mixtures with ``extra["clean_X"]``, or an iterable of
        such tuples. Paper rows: λ_g 4, 16, 32 with CCT 0.7.
        """
        self._require_fitted()
        return self.fit(pairs, epochs=epochs, lambda_g=lambda_g, cct=cct, guidance=guidance, **kwargs)

    @staticmethod
    def _val_data(val: Any) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[int]]:
        """Validation inputs, their phase and clip length (the phase only from a SpectrogramSet)."""
        if val is None:
            return None, None, None
        X, _ = unpack_inputs(getattr(val, "X", val))
        if isinstance(val, SpectrogramSet):
            return X, val.phase, int(val.waveform.shape[-1])
        return X, None, None

    @torch.no_grad()
    def evaluate(self, X: Tensor, lambdas: Optional[Dict[str, float]] = None, batch_size: int = 32) -> Dict[str, float]:
        """Loss terms, Fid-In, AI and mask mean of the current decoder on X (no training).

        For a classifier that needs the clips' phase (waveform models), bind it around the call
        (``with lmac.bound(phase, length): lmac.evaluate(X)``)."""
        lambdas = lambdas or {"in": 4.0, "out": 0.2, "s": 0.4, "g": 0.0}
        self._require_fitted().eval()
        acc = {"loss": 0.0, "in": 0.0, "out": 0.0, "l1": 0.0, "fid_in": 0.0, "ai": 0.0, "mask_mean": 0.0}
        with eval_mode(self.model, freeze=True):
            for s in range(0, X.shape[0], batch_size):
                xb = X[s : s + batch_size]
                with bound_slice(self.model, s, s + xb.shape[0]):
                    logits, M = self._mask(xb)
                    out_in = self.model(apply_mask(xb, M, self.mask_domain))
                    out_out = self.model(apply_mask(xb, 1 - M, self.mask_domain))
                y = logits.argmax(1)
                l_in = F.cross_entropy(out_in, y, reduction="sum")
                l_out = F.cross_entropy(out_out, y, reduction="sum")
                l1 = M.abs().flatten(1).mean(1).sum()
                acc["in"] += float(l_in)
                acc["out"] += float(l_out)
                acc["l1"] += float(l1)
                acc["loss"] += float(lambdas["in"] * l_in - lambdas["out"] * l_out + lambdas["s"] * l1)
                acc["fid_in"] += float((out_in.argmax(1) == y).sum())
                p, p_in = logits.softmax(1).gather(1, y[:, None]), out_in.softmax(1).gather(1, y[:, None])
                acc["ai"] += float((p_in > p).float().sum()) * 100
                acc["mask_mean"] += float(M.flatten(1).mean(1).sum())
        return {k: v / X.shape[0] for k, v in acc.items()}

    # ------------------------------------------------------------------ attribution
    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        on_target_mismatch: str = "error",
        batch_size: int = 64,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""The L-MAC mask for ``inputs``: same shape as the input, values in [0, 1].

        Args:
            inputs (Tensor or 1-tuple): X (N, 1, F, T) in the domain the decoder was fitted on.
            target (int, list, tensor or None): Class per sample. L-MAC explains the classifier's
                own decision, so None (the default) means the predicted class; an explicit target
                must equal the prediction.
            on_target_mismatch (str): What to do when an explicit target differs from the
                prediction: ``"error"`` (default), ``"warn"`` (return the decision's mask anyway,
                e.g. inside NoiseTunnel / sensitivity_max where noise may flip a decision) or
                ``"ignore"``.
            batch_size (int): Inputs processed at once.

        Returns:
            Tensor (or 1-tuple if ``inputs`` was a tuple): the mask M, (N, 1, F, T).
        """
        decoder = self._require_fitted()
        X, was_tuple = unpack_inputs(inputs, decoder.out_freqs, allow_silent=False)
        decoder.eval()
        masks, preds = [], []
        with torch.no_grad(), eval_mode(self.model, freeze=True):
            for s in range(0, X.shape[0], batch_size):
                with bound_slice(self.model, s, s + batch_size):
                    logits, M = self._mask(X[s : s + batch_size])
                masks.append(M)
                preds.append(logits.argmax(1))
        pred = torch.cat(preds).cpu()
        n_classes = int(logits.shape[1])
        t = format_target(target, X.shape[0], n_classes)
        if t is not None and not torch.equal(t, pred):
            bad = (t != pred).nonzero().flatten()
            msg = (
                f"target {t[bad[0]].item()} for input {bad[0].item()} is not the classifier's decision "
                f"({pred[bad[0]].item()}); L-MAC explains the predicted class (use target=None), "
                "or pass on_target_mismatch='warn'"
            )
            if on_target_mismatch == "error":
                raise InputError(msg)
            if on_target_mismatch == "warn":
                warnings.warn(msg, stacklevel=2)
            elif on_target_mismatch != "ignore":
                raise InputError(f"on_target_mismatch must be 'error', 'warn' or 'ignore', got {on_target_mismatch!r}")
        mask = torch.cat(masks).to(X.dtype)
        return (mask,) if was_tuple else mask
