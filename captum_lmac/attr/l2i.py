r"""L2I: Listen to Interpret (Parekh, Parekh, Essid, Richard, d'Alché-Buc; NeurIPS 2022).

A post-hoc interpreter for a frozen audio classifier f. A non-negative spectral dictionary W (F × K)
is learnt beforehand by sparse NMF on ``V = log(1 + |X|)`` of the training set
(:mod:`captum_lmac.nmf`). The interpreter then learns

- Ψ: the classifier's hidden representations (forward hooks on user-named layers) → non-negative
  time activations H (K × T) of the dictionary's components, so that W H ≈ log(1 + |X|);
- Θ: attention pooling of H over time → z (K,), then a linear layer K → C mimicking f's output.

Loss (per batch, every term a mean, see :meth:`L2I.fit` for the normalisation)::

    CE(Θ(H), softmax f(X))  +  α · mean (log(1+|X|) − W H)²  +  β · mean H      (reference α 5, β 0.4)

Explanation of class c: relevance ``r_k = z_k θ_{c,k} / max_l |z_l θ_{c,l}|``, selected components
L = {k : r_k > RT} (RT = 0.2 in the L-MAC tables), soft mask ``M = Σ_{k∈L} w_k h_k / (W H)`` on the
(F, T) grid, applied to |X| and listened to with the input's phase (:meth:`captum_lmac.STFT.listen`);
every component can also be listened to on its own (:meth:`L2I.component_masks`).

Paper: https://arxiv.org/abs/2202.11479
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor, nn

from .._utils import TargetType, eval_mode, format_target
from .._validate import check_number, check_positive_int
from ..data.tensors import SpectrogramSet
from ..errors import InputError
from ..nmf import frames_matrix, learn_dictionary, log_magnitude
from ..nn.decoders import layer_shape_spec
from ..nn.l2i import L2INet
from ..nn.hooks import LayerSpec
from ..nn.adapters import bound_slice
from ..data.streaming import is_stream
from ._learned import (PASS_BATCH, Batch, FitPlan, LearnedAttribution, evaluate_stream, iterate_batches, materialise,
                       unpack_inputs)

_EPS = 1e-8
_NO_PAIRS = "__l2i_no_pairs__"  # SpectrogramSet batches: X only, even when clean_X is present








def _as_tensor_dictionary(W: Any) -> Tensor:
    if not torch.is_tensor(W) or W.dim() != 2:
        raise InputError(f"dictionary must be an (F, K) tensor, got {getattr(W, 'shape', type(W).__name__)}")
    if not torch.isfinite(W).all() or float(W.min()) < 0:
        raise InputError("dictionary must be finite and non-negative")
    return W.detach().float().cpu().contiguous()


class L2I(LearnedAttribution):
    r"""L2I: interpret a frozen classifier with a learnt NMF dictionary and listen to the result.

    Ψ maps the classifier's hidden layers to time activations H ≥ 0 of K spectral components W
    (sparse NMF on log(1 + |X|), learnt by :meth:`fit` unless given), and Θ (attention pooling over
    time + linear layer) mimics the classifier's output from H. The explanation of class c is the
    set of components with relevance ``r_k = z_k θ_{c,k} / max_l |z_l θ_{c,l}| > RT`` and the soft
    mask ``Σ_{k∈L} w_k h_k / (W H)`` they form, in [0, 1] on the (F, T) grid of X.

    Paper: https://arxiv.org/abs/2202.11479

    Differences from the released reference code (on purpose): Θ is saved and loaded with Ψ (the
    reference evaluates with a freshly initialised Θ, so its Θ-based fidelity compares against a
    constant); the best validation epoch is kept; the interpreter adapts to any hooked layer shapes;
    H covers every input frame.

    Args:
        forward_func (nn.Module): The classifier, input X (N, 1, F, T) (linear magnitude) → logits (N, C).
        layers (list of nn.Module or str): Hooked classifier layers feeding Ψ (e.g. the last 2-3
            blocks). 2-D maps (N, C, F', T') and 1-D sequences (N, C, T') are accepted.
        n_components (int, optional): K (default 100, or the number of columns of ``dictionary``).
        hidden (int): Width of Ψ.
        dictionary (Tensor, optional): A pre-learnt (F, K) dictionary (:func:`captum_lmac.nmf.learn_dictionary`
            on ``log(1 + |X|)``); learnt by :meth:`fit` when None.
        activation (str): Non-negativity of H: ``"relu"`` (exact zeros; default) or ``"softplus"``.
        sequence_layout (str, optional): ``"NCT"`` or ``"NTC"`` for 3-D outputs of layers given by name
            (default: inferred per layer; see :class:`~captum_lmac.attr.Hook`).

    Examples::

        >>> l2i = L2I(model, layers=[net.block3, net.block4], n_components=100)
        >>> history = l2i.fit(train_set, epochs=20, val=val_set)    # learns W first
        >>> mask = l2i.attribute(X, threshold=0.2)                  # (N, 1, F, T) in [0, 1]
        >>> audio = stft.listen(X, phase, mask)                     # the interpretation
        >>> k = l2i.selected_components(X[:1])[0]                   # its components, most relevant first
        >>> solo = stft.listen(X[:1], phase[:1], l2i.component_masks(X[:1], k)[:, :1])
        >>> l2i.save("l2i.pt"); l2i = L2I.load("l2i.pt", model)
    """

    kind = "l2i"
    history_keys = ("loss", "fidelity", "nmf", "l1", "fid_acc")
    progress_keys = ("loss", "fid_acc", "nmf")
    init_keys = ("n_components", "hidden", "activation", "sequence_layout")

    def __init__(
        self,
        forward_func: nn.Module,
        layers: Sequence[LayerSpec],
        n_components: Optional[int] = None,
        hidden: int = 64,
        dictionary: Optional[Tensor] = None,
        activation: str = "relu",
        sequence_layout: Optional[str] = None,
    ) -> None:
        if sequence_layout not in (None, "NCT", "NTC"):
            raise InputError(f"sequence_layout must be 'NCT', 'NTC' or None (inferred), got {sequence_layout!r}")
        super().__init__(forward_func, layers, layout=sequence_layout)
        if activation not in ("relu", "softplus"):
            raise InputError(f"activation must be 'relu' or 'softplus', got {activation!r}")
        self._dictionary: Optional[Tensor] = None
        if dictionary is not None:
            self._dictionary = _as_tensor_dictionary(dictionary)
            k = self._dictionary.shape[1]
            if n_components is not None and int(n_components) != k:
                raise InputError(f"n_components={n_components} but the dictionary has {k} columns")
            n_components = k
        self.n_components = int(n_components) if n_components is not None else 100
        if self.n_components < 1:
            raise InputError(f"n_components must be >= 1, got {self.n_components}")
        if int(hidden) < 1:
            raise InputError(f"hidden must be >= 1, got {hidden}")
        self.hidden = int(hidden)
        self.activation = activation
        self.sequence_layout = sequence_layout

    # ------------------------------------------------------------------ persistence
    def _build(self, config: Dict[str, Any]) -> None:
        self.decoder = L2INet(**config["decoder"])

    def _load_state(self, state: Dict[str, Tensor]) -> None:
        super()._load_state(state)  # Ψ, Θ and the dictionary buffer
        self._dictionary = self.decoder.dictionary.detach().clone()
        self.decoder.eval()

    @property
    def dictionary(self) -> Optional[Tensor]:
        """The NMF dictionary W (F, K) (None before it is given or learnt)."""
        if self.decoder is not None:
            return self.decoder.dictionary
        return self._dictionary

    # ------------------------------------------------------------------ dictionary
    def learn_dictionary(self, batches: Any, beta: Optional[float] = None, n_iter: int = 200,
                         max_frames: Optional[int] = None, seed: int = 0, progress: bool = True,
                         l2i_alpha: float = 5.0, l2i_beta: float = 0.4) -> Dict[str, Any]:
        r"""Learn the NMF dictionary on ``log(1 + |X|)`` of ``batches`` (all frames of all clips).

        Args:
            batches: Training spectrograms (tensor, :class:`SpectrogramSet` or iterable of batches).
            beta (float, optional): ℓ1 penalty of the NMF (on the summed objective). Default: the
                sparsity L2I's own loss implies, ``l2i_beta · F / (2 · l2i_alpha · K)`` (≈ 0.2 for
                F = 513, K = 100, α 5, β 0.4), so W is learnt for the trade-off Ψ is trained with.
            n_iter, max_frames, seed, progress: See :func:`captum_lmac.nmf.learn_dictionary`.

        Returns:
            dict: the NMF info (objective per iteration, relative error, frames, seconds).
        """
        V = _collect_frames(batches, max_frames, seed)
        if beta is None:
            beta = implied_nmf_beta(V.shape[0], self.n_components, l2i_alpha, l2i_beta)
        W, info = learn_dictionary(
            V, self.n_components, beta=beta, n_iter=n_iter, max_frames=max_frames, seed=seed,
            progress=progress, return_info=True,
        )
        if self.decoder is not None and self.decoder.dictionary.shape != W.shape:
            raise InputError(
                f"new dictionary {tuple(W.shape)} does not fit the interpreter's "
                f"{tuple(self.decoder.dictionary.shape)}"
            )
        self._dictionary = W
        if self.decoder is not None:
            self.decoder.dictionary.copy_(W)
        return info

    # ------------------------------------------------------------------ forward helpers
    def _ensure_decoder(self, X: Tensor) -> None:
        if self.decoder is not None:
            return
        if self._dictionary is None:
            raise InputError("no dictionary: give one to L2I(...) or call learn_dictionary / fit")
        if self._dictionary.shape[0] != X.shape[2]:
            raise InputError(
                f"the dictionary has {self._dictionary.shape[0]} rows but the inputs {X.shape[2]} frequency bins"
            )
        with torch.no_grad(), eval_mode(self.model, freeze=True):
            with bound_slice(self.model, 0, 1):
                logits, feats = self.forward_with_features(X[:1])
        if logits.dim() != 2:
            raise InputError(f"the classifier must return (N, C) scores, got shape {tuple(logits.shape)}")
        spec = layer_shape_spec(feats)
        self.decoder = L2INet(spec, X.shape[2], self.n_components, int(logits.shape[1]), self.hidden, self.activation)
        self.decoder.dictionary.copy_(self._dictionary)

    def _run(self, X: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Classifier logits, H, Θ logits and z for X (classifier without gradients)."""
        with torch.no_grad():
            logits, feats = self.forward_with_features(X)
        H, theta_logits, z = self.decoder(feats, X.shape[-1])
        return logits, H, theta_logits, z

    def _check(self, inputs: Union[Tensor, Tuple[Tensor, ...]], allow_silent: bool = True) -> Tuple[Tensor, bool]:
        decoder = self._require_fitted()
        return unpack_inputs(inputs, decoder.n_freqs, allow_silent=allow_silent)

    @torch.no_grad()
    def inspect(self, inputs: Union[Tensor, Tuple[Tensor, ...]], batch_size: int = 32) -> Dict[str, Tensor]:
        """Everything L2I computes for X: ``logits`` (the classifier), ``H`` (Ψ), ``theta_logits`` and
        ``z`` (Θ), each batched over the N inputs."""
        X, _ = self._check(inputs)
        self.decoder.eval()
        out: Dict[str, List[Tensor]] = {"logits": [], "H": [], "theta_logits": [], "z": []}
        with eval_mode(self.model, freeze=True):
            for s in range(0, X.shape[0], batch_size):
                with bound_slice(self.model, s, s + batch_size):
                    parts = self._run(X[s : s + batch_size])
                for k, v in zip(out, parts):
                    out[k].append(v)
        return {k: torch.cat(v) for k, v in out.items()}

    def relevance_from(self, z: Tensor, target: Tensor) -> Tensor:
        contrib = z * self.decoder.theta.linear.weight[target]  # (N, K): z_k θ_{c,k}
        peak = contrib.abs().amax(1, keepdim=True)
        return torch.where(peak > 0, contrib / peak.clamp_min(1e-30), torch.zeros_like(contrib))

    def masks_from(self, H: Tensor, weights: Tensor) -> Tensor:
        """Σ_k weights_{n,k} w_k h_k / (W H + eps) → (N, 1, F, T) in [0, 1]."""
        W = self.decoder.dictionary
        num = torch.einsum("fk,nkt->nft", W, H * weights.to(H.dtype).unsqueeze(-1))
        den = torch.einsum("fk,nkt->nft", W, H)
        return (num / (den + _EPS)).clamp(0.0, 1.0).unsqueeze(1)

    def resolve_target(self, target: TargetType, n: int, pred: Tensor) -> Tensor:
        t = format_target(target, n, self.decoder.n_classes)
        return pred if t is None else t

    # ------------------------------------------------------------------ public inspection
    @torch.no_grad()
    def activations(self, inputs: Union[Tensor, Tuple[Tensor, ...]], batch_size: int = 32) -> Tensor:
        """Ψ's component activations H (N, K, T) for X (N, 1, F, T)."""
        X, _ = self._check(inputs)
        return self.inspect(X, batch_size)["H"]

    @torch.no_grad()
    def interpreter_logits(self, inputs: Union[Tensor, Tuple[Tensor, ...]], batch_size: int = 32) -> Tensor:
        """Θ's output (N, C): the interpreter's imitation of the classifier's logits."""
        X, _ = self._check(inputs)
        return self.inspect(X, batch_size)["theta_logits"]

    @torch.no_grad()
    def relevance(self, inputs: Union[Tensor, Tuple[Tensor, ...]], target: TargetType = None,
                  batch_size: int = 32) -> Tensor:
        r"""Relevance ``r_k = z_k θ_{c,k} / max_l |z_l θ_{c,l}|`` of each component, (N, K) in [−1, 1].

        Args:
            inputs: X (N, 1, F, T) or a 1-tuple.
            target: Class c per sample (None: the classifier's prediction; any class is allowed).
        """
        X, _ = self._check(inputs)
        out = self.inspect(X, batch_size)
        t = self.resolve_target(target, X.shape[0], out["logits"].argmax(1).cpu())
        return self.relevance_from(out["z"], t.to(out["z"].device))

    @torch.no_grad()
    def selected_components(self, inputs: Union[Tensor, Tuple[Tensor, ...]], target: TargetType = None,
                            threshold: float = 0.2, batch_size: int = 32) -> List[Tensor]:
        """Per sample, the indices of the components with relevance > ``threshold``, most relevant first."""
        threshold = _check_threshold(threshold)
        r = self.relevance(inputs, target, batch_size)
        out = []
        for row in r:
            idx = (row > threshold).nonzero().flatten()
            out.append(idx[row[idx].argsort(descending=True)])
        return out

    @torch.no_grad()
    def component_masks(self, inputs: Union[Tensor, Tuple[Tensor, ...]], components: Any,
                        batch_size: int = 32) -> Tensor:
        r"""One soft mask per component, ``w_k h_k / (W H)``, to listen to each component on its own.

        Args:
            inputs: X (N, 1, F, T) or a 1-tuple.
            components: Component indices: an int, a list / 1-D tensor (the same for every sample),
                or an (N, n) tensor (per sample), e.g. from :meth:`selected_components`.

        Returns:
            Tensor (N, n, F, T) in [0, 1]; ``masks[:, j:j + 1]`` is an (N, 1, F, T) mask for
            :meth:`captum_lmac.STFT.listen`. The masks of all K components sum to (almost) 1.
        """
        X, _ = self._check(inputs)
        K = self.decoder.n_components
        idx = _component_index(components, X.shape[0], K)
        out = self.inspect(X, batch_size)
        W, H = self.decoder.dictionary, out["H"]
        den = torch.einsum("fk,nkt->nft", W, H) + _EPS
        Wsel = W.T[idx]  # (N, n, F)
        Hsel = torch.gather(H, 1, idx.unsqueeze(-1).expand(-1, -1, H.shape[-1]))  # (N, n, T)
        return (Wsel.unsqueeze(-1) * Hsel.unsqueeze(2) / den.unsqueeze(1)).clamp(0.0, 1.0).to(X.dtype)

    # ------------------------------------------------------------------ attribution
    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        threshold: float = 0.2,
        batch_size: int = 32,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""The L2I interpretation mask: ``Σ_{k∈L} w_k h_k / (W H)`` with L = {k : r_k > threshold}.

        W H models log(1 + |X|) and the ratio is the share of the selected components in that
        model at each time-frequency point; like every mask here it multiplies |X|
        (``stft.listen(X, phase, mask)``).

        Args:
            inputs (Tensor or 1-tuple): X (N, 1, F, T), the linear magnitude the classifier takes.
            target (int, list, tensor or None): Class explained per sample; None (default) = the
                classifier's prediction. Θ scores every class, so any class may be explained.
            threshold (float): Relevance threshold RT (0.2 in the L-MAC tables); higher → fewer
                components → a smaller (elementwise ≤) mask.
            batch_size (int): Inputs processed at once.

        Returns:
            Tensor (or 1-tuple if ``inputs`` was a tuple): the mask (N, 1, F, T) in [0, 1].
        """
        X, was_tuple = self._check(inputs, allow_silent=False)
        threshold = _check_threshold(threshold)
        out = self.inspect(X, batch_size)
        t = self.resolve_target(target, X.shape[0], out["logits"].argmax(1).cpu()).to(out["z"].device)
        sel = self.relevance_from(out["z"], t) > threshold
        masks = [self.masks_from(out["H"][s : s + batch_size], sel[s : s + batch_size])
                 for s in range(0, X.shape[0], batch_size)]
        mask = torch.cat(masks).to(X.dtype)
        return (mask,) if was_tuple else mask

    # ------------------------------------------------------------------ training
    def _loss_terms(self, X: Tensor, alpha: float, beta: float,
                    pre: Optional[Tuple[Tensor, List[Tensor]]] = None) -> Dict[str, Tensor]:
        if pre is None:
            logits, H, theta_logits, _ = self._run(X)
        else:
            logits = pre[0]
            H, theta_logits, _ = self.decoder(pre[1], X.shape[-1])
        p = torch.softmax(logits.detach(), 1)
        fid = -(p * F.log_softmax(theta_logits, 1)).sum(1).mean()  # CE with the classifier's soft labels
        nmf = (log_magnitude(X)[:, 0] - self.decoder.reconstruct(H)).pow(2).mean()
        l1 = H.abs().mean()
        return {
            "loss": fid + alpha * nmf + beta * l1, "fidelity": fid, "nmf": nmf, "l1": l1,
            "fid_acc": (theta_logits.argmax(1) == logits.argmax(1)).float().mean().detach(),
            "logits": logits, "theta_logits": theta_logits.detach(),
        }

    @torch.no_grad()
    def evaluate(self, X: Tensor, alpha: float = 5.0, beta: float = 0.4, batch_size: int = PASS_BATCH,
                 _pre: Optional[Tuple[Tensor, List[Tensor]]] = None) -> Dict[str, float]:
        """Loss terms, top-1/top-3 fidelity of Θ to the classifier and mean of H on X (no training)."""
        X, _ = self._check(X)
        self.decoder.eval()
        acc = {"loss": 0.0, "fidelity": 0.0, "nmf": 0.0, "l1": 0.0, "fid_acc": 0.0, "fid_top3": 0.0}
        with eval_mode(self.model, freeze=True):
            for s in range(0, X.shape[0], batch_size):
                xb = X[s : s + batch_size]
                pre = None if _pre is None else (_pre[0][s : s + batch_size], [f[s : s + batch_size] for f in _pre[1]])
                with bound_slice(self.model, s, s + batch_size):
                    terms = self._loss_terms(xb, alpha, beta, pre)
                for k in ("loss", "fidelity", "nmf", "l1", "fid_acc"):
                    acc[k] += float(terms[k]) * xb.shape[0]
                logits, theta_logits = terms["logits"], terms["theta_logits"]
                k3 = min(3, theta_logits.shape[1])
                top = theta_logits.topk(k3, dim=1).indices
                acc["fid_top3"] += float((top == logits.argmax(1, keepdim=True)).any(1).float().sum())
        return {k: v / X.shape[0] for k, v in acc.items()}

    def fit(
        self,
        batches: Any,
        epochs: int = 10,
        batch_size: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        alpha: float = 5.0,
        beta: float = 0.4,
        val: Optional[Any] = None,
        seed: int = 0,
        progress: bool = True,
        nmf_beta: Optional[float] = None,
        nmf_iter: int = 200,
        nmf_max_frames: Optional[int] = None,
        cache_features_gb: float = 2.0,
        *,
        checkpoint_dir: Optional[Any] = None,
        checkpoint_every: int = 1,
        checkpoint_steps: Optional[int] = None,
        resume: bool = False,
    ) -> Dict[str, Any]:
        r"""Learn the dictionary (if none was given) and train Ψ and Θ on the frozen classifier.

        Loss per batch, every term a mean over its elements so its scale does not depend on the
        batch size, the clip length, F or K:

        .. math::
            -\frac1N\sum_n \sum_c p_c(x_n)\log\mathrm{softmax}(Θ(H_n))_c
            + α\,\mathrm{mean}_{n,f,t}\,(\log(1+|X|) − WH)^2 + β\,\mathrm{mean}_{n,k,t}\,H.

        With means, α 5 and β 0.4 (the reference weights) keep the three terms of comparable size
        (fidelity ≈ 0.1–2, α·MSE ≈ 0.1–0.5 for a fitted NMF model of log1p magnitudes, β·mean H
        ≈ 0.05–0.2). The ratio of the last two terms' gradients equals an NMF ℓ1 weight of
        β·F / (2αK) on the summed objective, which is the default sparsity of the dictionary
        learnt here (see :meth:`learn_dictionary`).

        Args:
            batches: Training spectrograms X (N, 1, F, T): a tensor (shuffled into ``batch_size``
                batches), a :class:`SpectrogramSet`, or any re-iterable of batches (list, DataLoader;
                a tuple batch contributes its first element).
            epochs (int): Passes over the data.
            batch_size (int): Batch size for tensor input.
            lr, weight_decay (float): Adam settings.
            alpha, beta (float): Weights of the NMF reconstruction and ℓ1 terms (reference 5, 0.4).
            val: Validation inputs (tensor or SpectrogramSet); the epoch with the lowest validation
                loss is kept, and the top-1/top-3 fidelity of Θ to the classifier is logged.
            seed (int): Seed for the initialisation, the batch order and the dictionary.
            progress (bool): Show progress bars (dictionary and epochs).
            nmf_beta, nmf_iter, nmf_max_frames: Dictionary learning settings (:meth:`learn_dictionary`).
            cache_features_gb (float): For in-memory data (a tensor or :class:`SpectrogramSet`),
                run the frozen classifier once and keep its logits and hooked outputs if they take
                at most this many GB (0 disables). Exact (the classifier is frozen, in eval mode)
                and several times faster per epoch.
            checkpoint_dir (path, optional): Write a resumable fit state there (``last.pt``: decoder,
                optimiser, RNG states, history; ``torch.load(weights_only=True)``) every
                ``checkpoint_every`` epochs, every ``checkpoint_steps`` steps and on SIGTERM / Ctrl-C
                (then :class:`~captum_lmac.errors.FitInterrupted` is raised).
            resume (bool): Continue the fit stored in ``checkpoint_dir`` exactly where it stopped
                (a missing checkpoint starts afresh). See :meth:`LearnedAttribution._run_fit` for
                streaming data and distributed (torchrun / DDP) fits.

        Returns:
            dict: lists per epoch (``loss``, ``fidelity``, ``nmf``, ``l1``, ``fid_acc`` and
            ``val_loss``, ``val_fidelity``, ``val_nmf``, ``val_l1``, ``val_fid_acc``,
            ``val_fid_top3`` when ``val`` is given), ``best_epoch``, ``seconds`` (interpreter
            training), ``dictionary_seconds``, ``dictionary`` (NMF info, when learnt here) and
            ``decoder_parameters``.
        """
        epochs = check_positive_int(epochs, "epochs")
        alpha, beta = check_number(alpha, "alpha", minimum=0.0), check_number(beta, "beta", minimum=0.0)
        cache_features_gb = check_number(cache_features_gb, "cache_features_gb", minimum=0.0)
        self._fit_settings = {"alpha": alpha, "beta": beta, "nmf_beta": nmf_beta, "nmf_iter": nmf_iter,
                              "nmf_max_frames": nmf_max_frames, "cache_features_gb": cache_features_gb,
                              "epochs": int(epochs)}
        return self._run_fit(batches, epochs, batch_size, lr, weight_decay, val, seed, progress,
                             checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                             checkpoint_steps=checkpoint_steps, resume=resume)

    def _fit_setup(self, data: Any, val: Any, batch_size: int, seed: int, progress: bool) -> FitPlan:
        cfg = self._fit_settings
        data = materialise(data)
        first = next(iter(iterate_batches(data, batch_size, torch.Generator().manual_seed(seed), _NO_PAIRS)), None)
        if first is None:
            raise InputError("fit got no training batches")
        X0, _ = unpack_inputs(first.X, self.decoder.n_freqs if self.decoder is not None else None)
        self._resolve_auto(first)
        hist: Dict[str, Any] = {}
        t_dict = time.time()
        if self.decoder is None and self._dictionary is None:
            hist["dictionary"] = self.learn_dictionary(
                data, beta=cfg["nmf_beta"], n_iter=cfg["nmf_iter"], max_frames=cfg["nmf_max_frames"], seed=seed,
                progress=progress, l2i_alpha=cfg["alpha"], l2i_beta=cfg["beta"],
            )
        hist["dictionary_seconds"] = time.time() - t_dict
        with self.bound(first.phase, first.length):
            self._ensure_decoder(X0)
        val_X = None if val is None or is_stream(val) else unpack_inputs(getattr(val, "X", val), self.decoder.n_freqs)[0]
        val_phase = (val.phase, int(val.waveform.shape[-1])) if isinstance(val, SpectrogramSet) else (None, None)
        in_memory = isinstance(data, SpectrogramSet) or torch.is_tensor(data)
        train_X = getattr(data, "X", data) if in_memory else None
        train_phase = (data.phase, int(data.waveform.shape[-1])) if isinstance(data, SpectrogramSet) else (None, None)
        if train_X is not None:
            train_X, _ = unpack_inputs(train_X, self.decoder.n_freqs)
        budget = float(cfg["cache_features_gb"]) * 1e9 if cfg["epochs"] > 0 else 0.0
        with eval_mode(self.model, freeze=True):
            with self.bound(*train_phase):
                cache = self._classifier_outputs(train_X, PASS_BATCH, budget) if train_X is not None else None
            with self.bound(*val_phase):
                val_cache = self._classifier_outputs(val_X, PASS_BATCH, budget) if val_X is not None else None
        hist["cached_features"] = cache is not None
        validate = None
        if is_stream(val):
            def validate_batch(b: Batch) -> Dict[str, float]:
                with self.bound(b.phase, b.length):
                    return self.evaluate(b.X, cfg["alpha"], cfg["beta"])

            def validate() -> Dict[str, float]:
                return evaluate_stream(val, validate_batch)
        elif val_X is not None:
            def validate() -> Dict[str, float]:
                with self.bound(*val_phase):
                    return self.evaluate(val_X, cfg["alpha"], cfg["beta"], _pre=val_cache)
        return FitPlan(batches=lambda gen: self._epoch(data, train_X, train_phase[0], cache, batch_size, gen),
                       validate=validate, history=hist)

    def _train_step(self, batch: Batch) -> Tuple[Dict[str, Tensor], int]:
        xb, _ = unpack_inputs(batch.X, self.decoder.n_freqs)
        return self._loss_terms(xb, self._fit_settings["alpha"], self._fit_settings["beta"], batch.extra), xb.shape[0]

    @staticmethod
    def _epoch(batches: Any, train_X: Optional[Tensor], train_phase: Optional[Tensor],
               cache: Optional[Tuple[Tensor, List[Tensor]]], batch_size: int, gen: torch.Generator) -> Iterator[Batch]:
        """One epoch of batches (with the cached classifier outputs in ``extra``), shuffled like iterate_batches."""
        if cache is None:
            yield from iterate_batches(batches, batch_size, gen, _NO_PAIRS)
            return
        order = torch.randperm(train_X.shape[0], generator=gen)
        for s in range(0, train_X.shape[0], batch_size):
            idx = order[s : s + batch_size]
            yield Batch(train_X[idx], phase=train_phase[idx] if train_phase is not None else None,
                        extra=(cache[0][idx], [f[idx] for f in cache[1]]))


# ---------------------------------------------------------------------- helpers


def implied_nmf_beta(n_freqs: int, n_components: int, alpha: float = 5.0, beta: float = 0.4) -> float:
    r"""The NMF ℓ1 weight (on ½‖V − WH‖²_sum + β'‖H‖₁) equivalent to L2I's mean-normalised loss.

    ``α·mean(V − WH)² + β·mean H`` over an (F, T) spectrogram and (K, T) activations has the same
    minimisers in H as ``½‖V − WH‖² + β'‖H‖₁`` with ``β' = β·F / (2·α·K)``.
    """
    return float(beta) * int(n_freqs) / (2.0 * float(alpha) * int(n_components))


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(float(threshold)):
        raise InputError(f"threshold must be a finite number (relevances lie in [-1, 1]), got {threshold!r}")
    return float(threshold)




#: Frames of a streaming training set that dictionary learning reads at most (a seeded uniform
#: subsample; ≈ 100 MB for 513 bins) unless ``nmf_max_frames`` says otherwise.
STREAM_NMF_FRAMES = 50_000


def _collect_frames(batches: Any, max_frames: Optional[int] = None, seed: int = 0) -> Tensor:
    """``log(1 + |X|)`` of all training spectrograms as one (F, frames) matrix (dictionary learning).

    Clips of different lengths are fine: their frames are concatenated. A streaming source is read
    once, in order, keeping at most ``max_frames`` (default :data:`STREAM_NMF_FRAMES`) valid
    (non-padding) frames, so memory stays bounded.
    """
    if is_stream(batches):
        cols = batches.frames(int(max_frames or STREAM_NMF_FRAMES), seed=seed)
        return torch.log1p(cols.abs())
    if isinstance(batches, SpectrogramSet):
        parts = [batches.X]
    elif torch.is_tensor(batches):
        parts = [batches]
    else:
        parts = [b.X for b in iterate_batches(materialise(batches), 1 << 30, torch.Generator(), _NO_PAIRS)]
    if not parts:
        raise InputError("no training batches to learn the dictionary from")
    parts = [unpack_inputs(p)[0] for p in parts]
    if len({p.shape[2] for p in parts}) != 1:
        freqs = sorted({p.shape[2] for p in parts})
        raise InputError(f"training batches have different numbers of frequency bins: {freqs}")
    return torch.cat([frames_matrix(log_magnitude(p)) for p in parts], dim=1)


def _component_index(components: Any, n: int, K: int) -> Tensor:
    if isinstance(components, bool):
        raise InputError("components must be component indices, not a bool")
    if isinstance(components, int):
        idx = torch.tensor([[components]])
    elif torch.is_tensor(components):
        idx = components.detach().long().cpu()
        if idx.dim() == 0:
            idx = idx.view(1, 1)
        elif idx.dim() == 1:
            idx = idx.unsqueeze(0)
        elif idx.dim() != 2:
            raise InputError(f"components tensor must be 1-D or (N, n), got shape {tuple(idx.shape)}")
    elif isinstance(components, (list, tuple)):
        if not components or not all(isinstance(c, int) and not isinstance(c, bool) for c in components):
            raise InputError(f"components must be a non-empty list of ints, got {components!r}")
        idx = torch.tensor([list(components)])
    else:
        raise InputError(f"components must be an int, list or tensor, got {type(components).__name__}")
    if idx.shape[1] == 0:
        raise InputError("no components given")
    if idx.shape[0] == 1:
        idx = idx.expand(n, -1)
    if idx.shape[0] != n:
        raise InputError(f"components has {idx.shape[0]} rows for {n} inputs")
    bad = ((idx < 0) | (idx >= K)).nonzero()
    if len(bad):
        raise InputError(f"component index {int(idx[bad[0][0], bad[0][1]])} out of range [0, {K})")
    return idx


__all__ = ["L2I", "implied_nmf_beta"]
