r"""LMAC-ZS: Listenable Maps for Zero-Shot Audio Classifiers (Paissan, Della Libera, Ravanelli, Subakan, NeurIPS 2024)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor, nn

from .._utils import TargetType, eval_mode, format_target
from .._validate import check_choice, check_number, check_positive_int
from ..errors import CheckpointError, InputError
from ..nn.decoders import TextConditionedMaskDecoder, layer_shape_spec
from ..nn.zeroshot import TextEncoder, ZeroShotClassifier, check_prompts, encode_texts
from ..nn.hooks import LayerSpec
from ..data.streaming import is_stream
from ._learned import FitPlan, LearnedAttribution, iterate_batches, unpack_inputs
from .lmac import apply_mask

Captions = Sequence[Union[str, Sequence[str]]]

#: The loss terms recorded in the fit history (``cls`` and ``out`` are 0 while their weights are 0).
_TERMS = ("sim", "l1", "div", "cls", "out")
L1_REDUCTIONS = ("mean", "per_mask")
SIM_FLOORS = ("none", "empty")

#: Texts whose embeddings identify a text encoder in a saved LMAC-ZS checkpoint.
PROBE_TEXTS = ("this is the sound of a dog barking", "rain", "someone says the digit seven")


def _text_probe(embeddings: Tensor) -> float:
    """A checksum of the probe texts' embeddings (detects a different text encoder)."""
    e = embeddings.detach().double().flatten()
    return round(float((e * torch.linspace(1.0, 2.0, e.numel(), dtype=torch.float64)).sum()), 5)


def _loss_settings(lambdas: Dict[str, float], texts_per_audio: Optional[int] = None, l1_reduction: str = "mean",
                   sim_floor: str = "none", same_caption_threshold: float = 0.8,
                   scale: float = 1.0) -> Dict[str, Any]:
    """What one pass of the loss reads (:meth:`LMACZS._batch_pass`), as fit and evaluate build it;
    weights missing from ``lambdas`` are 0. ``rival_embeddings`` None = the other captions of the batch."""
    return {"lambdas": {**dict.fromkeys(_TERMS, 0.0), **lambdas}, "texts_per_audio": texts_per_audio,
            "l1_reduction": l1_reduction, "sim_floor": sim_floor, "same_caption_threshold": same_caption_threshold,
            "rival_embeddings": None, "scale": scale}


def _rng_state(rng: random.Random) -> List[Any]:
    """A ``random.Random`` state as JSON (fit-state checkpoints)."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from(value: Sequence[Any]) -> Tuple[Any, ...]:
    return (value[0], tuple(value[1]), value[2])


class _StreamPairs:
    """``(X, captions)`` batches of a captioned stream, in order (validation)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __iter__(self):
        for b in self.stream:
            if b.captions is None:
                raise InputError("LMAC-ZS validation clips need captions (StreamingSpectrograms captions=...)")
            yield b.X, [check_prompts(c, "captions") for c in b.captions]


class LMACZS(LearnedAttribution):
    r"""LMAC-ZS: a text-conditioned decoder that explains a zero-shot (CLAP-style) audio classifier.

    The decoder M_θ(t, h) reads the audio encoder's hidden representations h at the given
    ``layers`` (forward hooks, U-Net style) and is conditioned on a prompt's text embedding t by
    cross-attention at every level (as in the paper) plus a FiLM scale/shift after every level
    (:class:`TextConditionedMaskDecoder`; our addition, because the levels' GroupNorm otherwise
    absorbs most of the text conditioning); it outputs a mask M in [0, 1] on the (F, T) grid of
    the linear magnitude X. It is trained on a batch of B (audio, caption) pairs with normalised
    embeddings t_i = f_text(caption_i), a_j = f_audio(X_j) so that masking keeps every
    text–audio similarity, stays sparse, and reacts differently to different prompts:

    .. math::
        L = λ_{sim} \, \mathrm{mean}_{ij} |C_{ij} − t_i·f(M_θ(t_i, h_j) ⊙ X_j)|
            + λ_1 \, \mathrm{mean}|M| + λ_2 \, \mathrm{mean}_i D_i,

    with C_ij = t_i·a_j and the diversity term
    D_i = mean_{j≠i} |t_i·t_j − f(X_i ⊙ M(t_i, h_i))·f(X_i ⊙ M(t_j, h_i))|.
    The paper writes sums; we use means over the B² pairs, the mask elements and the B − 1 other
    prompts so that the loss scale (and the λ's) do not depend on the batch size or the
    spectrogram size. With the masks of one audio clip for all B captions computed together,
    the loss splits over clips, so each clip is back-propagated on its own (memory of B masks,
    not B²).

    Optional additions (off by default; see :meth:`fit`): a decision term ``lambda_cls`` (the
    masked-in clip keeps its own caption against rival texts), a bounded masked-out term
    ``lambda_out``, an L1 weight per mask (``l1_reduction="per_mask"``) and a similarity floor at
    the empty input's similarity (``sim_floor="empty"``).

    At attribution time any prompt works, including prompts never seen in training: the mask
    for prompt p is M_θ(f_text(p), h(X)). ``ISTFT((M ⊙ X) e^{jP})``
    (:meth:`captum_lmac.STFT.listen`) is the listenable explanation.

    Paper: https://arxiv.org/abs/2405.17615

    Args:
        audio_model (ZeroShotClassifier or nn.Module): The zero-shot classifier (its audio
            encoder, text encoder and prompts are used), or the audio encoder itself,
            X (N, 1, F, T) → embedding (N, D).
        text_encoder (callable, optional): list of P strings → (P, D) embeddings in the same
            space (default: the ZeroShotClassifier's).
        layers (list of nn.Module or str): Audio-encoder layers feeding the decoder, shallowest
            first; names are relative to the audio encoder (a leading ``"audio_encoder."`` is
            accepted).
        hidden (int): Decoder width.
        use_input (bool): Let the decoder also read log(1 + |X|).
        mask_domain (str): ``"linear"`` (M ⊙ |X|, the paper) or ``"log1p"``.
        sequence_layout (str, optional): ``"NCT"`` or ``"NTC"`` for 3-D outputs of layers given by name
            (default: inferred per layer; see :class:`~captum_lmac.attr.Hook`).
        film (bool): Add FiLM text conditioning after each decoder level on top of the
            cross-attention (default; see :class:`TextConditionedMaskDecoder`). False gives the
            plain cross-attention decoder.
        prompts (list of str, optional): Default prompts of :meth:`attribute` (default: the
            ZeroShotClassifier's).

    Examples::

        >>> zs = clap.zero_shot([f"this is the sound of {c}" for c in classes])
        >>> lmac_zs = LMACZS(zs, layers=[zs.audio_encoder.net.block2, zs.audio_encoder.net.block3,
        ...                              zs.audio_encoder.net.block4])
        >>> history = lmac_zs.fit((X_train, captions_train), epochs=10, val=(X_val, captions_val))
        >>> mask = lmac_zs.attribute(X)                                  # best-matching prompt
        >>> mask = lmac_zs.attribute(X, target=0, prompts=["a violin"])  # any prompt
        >>> lmac_zs.save("lmac_zs.pt"); lmac_zs = LMACZS.load("lmac_zs.pt", zs)
    """

    kind = "lmac_zs"
    backward_in_step = True  # the loss splits over clips: each clip is back-propagated inside the step
    history_keys = ("loss",) + _TERMS + ("mm_own", "mm_other")
    progress_keys = ("loss", "mm_own", "mm_other")
    load_options = ("check_text_encoder",)
    fitted_for = "audio encoder"
    init_keys = ("hidden", "use_input", "mask_domain", "sequence_layout", "film")

    def __init__(
        self,
        audio_model: nn.Module,
        text_encoder: Optional[TextEncoder] = None,
        layers: Optional[Sequence[LayerSpec]] = None,
        hidden: int = 32,
        use_input: bool = True,
        mask_domain: str = "linear",
        sequence_layout: Optional[str] = None,
        prompts: Optional[Sequence[str]] = None,
        film: bool = True,
    ) -> None:
        zs = audio_model if isinstance(audio_model, ZeroShotClassifier) else None
        audio = zs.audio_encoder if zs is not None else audio_model
        if text_encoder is None:
            if zs is None:
                raise InputError("LMACZS needs a text encoder: pass text_encoder= or a ZeroShotClassifier")
            text_encoder = zs.text_encoder
        if not callable(text_encoder):
            raise InputError(f"text_encoder must be callable (list of str -> (P, D)), got {type(text_encoder).__name__}")
        if layers is None:
            raise InputError("give the audio-encoder layers whose outputs feed the decoder (layers=[...])")
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        if zs is not None:
            layers = [l[len("audio_encoder."):] if isinstance(l, str) and l.startswith("audio_encoder.") else l
                      for l in layers]
        if sequence_layout not in (None, "NCT", "NTC"):
            raise InputError(f"sequence_layout must be 'NCT', 'NTC' or None (inferred), got {sequence_layout!r}")
        super().__init__(audio, layers, layout=sequence_layout)
        if mask_domain not in ("linear", "log1p"):
            raise InputError(f"mask_domain must be 'linear' or 'log1p', got {mask_domain!r}")
        self.zero_shot_model = zs
        self.text_encoder = text_encoder
        self.hidden = int(hidden)
        self.use_input = bool(use_input)
        self.mask_domain = mask_domain
        self.sequence_layout = sequence_layout
        self.film = bool(film)
        self._prompts: Optional[List[str]] = check_prompts(prompts) if prompts is not None else None

    @property
    def prompts(self) -> Optional[List[str]]:
        """Default prompts of :meth:`attribute`: the ones given, else the ZeroShotClassifier's current prompts."""
        if self._prompts is not None:
            return list(self._prompts)
        return self.zero_shot_model.prompts if self.zero_shot_model is not None else None

    def _copy_model(self) -> nn.Module:
        return self.zero_shot_model if self.zero_shot_model is not None else self.model

    def _copy_kwargs(self, model: nn.Module) -> Dict[str, Any]:
        kwargs = super()._copy_kwargs(model)
        if isinstance(model, ZeroShotClassifier):  # its own text encoder; prompts None = its own prompts
            return {**kwargs, "prompts": self._prompts}
        return {**kwargs, "text_encoder": self.text_encoder, "prompts": self.prompts}  # a bare audio encoder

    # ------------------------------------------------------------------ embeddings
    def embed_text(self, texts: Sequence[str]) -> Tensor:
        """Normalised text embeddings (P, D) (no gradients; modules in eval mode)."""
        return encode_texts(self.text_encoder, texts, normalize=True)

    def _audio(self, X: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """Normalised audio embeddings of X and the hooked representations (no gradients)."""
        with torch.no_grad():
            a, feats = self.forward_with_features(X)
        if not torch.is_tensor(a) or a.dim() != 2 or a.shape[0] != X.shape[0]:
            shape = tuple(a.shape) if torch.is_tensor(a) else type(a).__name__
            raise InputError(f"the audio encoder must return an (N, D) embedding, got {shape}")
        return F.normalize(a, dim=1), feats

    def _embed_masked(self, X: Tensor) -> Tensor:
        return F.normalize(self.model(X), dim=1)

    # ------------------------------------------------------------------ decoder
    def _config(self) -> Dict[str, Any]:
        config = super()._config()
        config["text"] = {"dim": int(self.decoder.cond_dim), "probe": _text_probe(self.embed_text(list(PROBE_TEXTS))),
                          "probe_texts": list(PROBE_TEXTS)}
        config["prompts"] = self.prompts
        return config

    def _build(self, config: Dict[str, Any]) -> None:
        d = config["decoder"]
        self.decoder = TextConditionedMaskDecoder(
            d["layer_spec"], d["out_freqs"], hidden=d["hidden"], use_input=d["use_input"],
            cond_dim=d["cond_dim"], film=d.get("film", True),
        )

    def _ensure_decoder(self, X: Tensor, text_dim: int) -> None:
        if self.decoder is not None:
            if int(self.decoder.cond_dim) != int(text_dim):
                raise InputError(f"text embeddings have {text_dim} dimensions but the decoder was built for {self.decoder.cond_dim}")
            return
        with eval_mode(self.model, freeze=True):
            a, feats = self._audio(X[:1])
        if a.shape[1] != text_dim:
            raise InputError(
                f"audio embeddings have {a.shape[1]} dimensions but text embeddings {text_dim}: "
                "the encoders must share one embedding space"
            )
        spec = layer_shape_spec(feats)
        self.decoder = TextConditionedMaskDecoder(spec, X.shape[2], hidden=self.hidden, use_input=self.use_input,
                                                  cond_dim=int(text_dim),
                                                  film=self.film)

    def _decode(self, feats: Sequence[Tensor], X: Tensor, t: Tensor) -> Tensor:
        """Masks (N, 1, F, T) for hooked representations, inputs and conditioning vectors of N items."""
        return torch.sigmoid(self.decoder(feats, X, t.to(X.device, X.dtype)))

    # ------------------------------------------------------------------ training
    def _clip_terms(
        self, X: Tensor, feats: List[Tensor], a: Tensor, t: Tensor, j: int, others: Tensor,
        rivals: Optional[Tensor] = None, scale: float = 1.0, need_out: bool = False,
        empty: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """Loss terms of audio clip j with the captions ``others`` (indices; ``others[0] == j``).

        Returns per-clip means: ``sim`` (mean_i |C_ij − t_i·f(M_ij ⊙ X_j)|), ``l1`` (mean |M_ij|),
        ``div`` (D_j, mean over the other captions) and the mask means for the own / other captions.
        With ``rivals`` (R, D) normalised rival text embeddings (R ≥ 1) also ``cls`` (the decision
        term: w_j · CE of the zero-shot logits ``scale·[t_j, rivals]·f(M_jj ⊙ X_j)`` with the own
        caption as the target, w_j = the clean clip's probability of its own caption over the same
        texts) and, with ``need_out``, ``out`` (w_j · −log(1 − p_own((1 − M_jj) ⊙ X_j))).
        ``empty`` (D,): the embedding of an empty (all-zero) input; the similarity targets become
        max(C_ij, t_i·f(0)) (``sim_floor="empty"``).
        """
        k = others.numel()
        fj = [f[j : j + 1].expand(k, *f.shape[1:]).contiguous() for f in feats]
        Xj = X[j : j + 1].expand(k, *X.shape[1:])
        tk = t[others]
        M = self._decode(fj, Xj, tk)  # row r: mask for caption others[r] on clip j
        e = self._embed_masked(apply_mask(Xj, M, self.mask_domain))
        C = tk @ a[j]  # t_i · a_j
        if empty is not None:
            C = torch.maximum(C, tk @ empty)  # no mask can go below what the empty input says
        sim = (C - (tk * e).sum(1)).abs().mean()
        l1 = M.abs().mean()
        if k > 1:
            tt = tk[0] @ tk[1:].t()  # t_j · t_i
            ee = e[0] @ e[1:].t()  # f(X_j ⊙ M(t_j, h_j)) · f(X_j ⊙ M(t_i, h_j))
            div = (tt - ee).abs().mean()
            mm_other = M[1:].mean()
        else:
            div = M.sum() * 0.0
            mm_other = torch.tensor(float("nan"))
        zero = M.sum() * 0.0
        cls, out = zero, zero
        if rivals is not None and rivals.shape[0] > 0:
            texts = torch.cat([tk[:1], rivals.to(tk)])  # row 0: the clip's own caption
            with torch.no_grad():
                w = torch.softmax(scale * (texts @ a[j]), 0)[0]  # clean clip's probability of its own caption
            cls = w * F.cross_entropy((scale * (texts @ e[0])).unsqueeze(0), torch.zeros(1, dtype=torch.long,
                                                                                     device=e.device))
            if need_out:
                e_out = self._embed_masked(apply_mask(X[j : j + 1], 1.0 - M[:1], self.mask_domain))
                logits = scale * (e_out[0] @ texts.t())
                log_rest = torch.logsumexp(logits[1:], 0) - torch.logsumexp(logits, 0)  # log(1 − p_own)
                out = -w * log_rest
        return {"sim": sim, "l1": l1, "div": div, "cls": cls, "out": out,
                "mm_own": M[0].mean().detach(), "mm_other": mm_other.detach()}

    def _rivals(self, t: Tensor, j: int, settings: Dict[str, Any]) -> Optional[Tensor]:
        """Rival text embeddings of clip j (the decision terms), or None when they are off.

        ``rival_texts="auto"``: the other captions of the batch; a fixed list: its embeddings. Either
        way, texts whose embedding cosine to the clip's own caption is ≥ ``same_caption_threshold``
        are skipped (the same sound in other words is no rival).
        """
        if settings["lambdas"].get("cls", 0.0) <= 0.0 and settings["lambdas"].get("out", 0.0) <= 0.0:
            return None
        pool = settings.get("rival_embeddings")
        if pool is None:
            pool = torch.cat([t[:j], t[j + 1 :]])
        pool = pool.to(t)
        keep = (pool @ t[j]) < settings["same_caption_threshold"]
        return pool[keep]

    def _batch_pass(
        self, X: Tensor, captions: List[str], settings: Dict[str, Any],
        g: Optional[torch.Generator], train: bool,
    ) -> Dict[str, float]:
        """One batch: loss terms averaged over clips; back-propagates clip by clip when ``train``."""
        lambdas, texts_per_audio = settings["lambdas"], settings.get("texts_per_audio")
        b = X.shape[0]
        t = self.embed_text(captions).to(X.device, X.dtype)
        a, feats = self._audio(X)
        empty = None
        if settings.get("sim_floor", "none") == "empty":
            with torch.no_grad():
                empty = self._embed_masked(torch.zeros_like(X[:1]))[0]
        k = b if texts_per_audio is None else max(1, min(int(texts_per_audio), b))
        per_mask = settings.get("l1_reduction", "mean") == "per_mask"
        keys = ("loss",) + _TERMS + ("mm_own", "mm_other")
        sums = {key: 0.0 for key in keys}
        n_other = 0
        for j in range(b):
            rest = torch.tensor([i for i in range(b) if i != j], dtype=torch.long)
            if k < b:
                perm = torch.randperm(b - 1, generator=g) if g is not None else torch.arange(b - 1)
                rest = rest[perm[: k - 1]]
            others = torch.cat([torch.tensor([j]), rest])
            with torch.set_grad_enabled(train):
                terms = self._clip_terms(X, feats, a, t, j, others, rivals=self._rivals(t, j, settings),
                                         scale=settings.get("scale", 1.0), need_out=lambdas.get("out", 0.0) > 0.0,
                                         empty=empty)
                l1 = terms["l1"] * others.numel() if per_mask else terms["l1"]
                loss = (lambdas["sim"] * terms["sim"] + lambdas["l1"] * l1 + lambdas["div"] * terms["div"]
                        + lambdas.get("cls", 0.0) * terms["cls"] + lambdas.get("out", 0.0) * terms["out"])
                if train:
                    (loss / b).backward()
            sums["loss"] += float(loss.detach())
            for key in _TERMS + ("mm_own",):
                sums[key] += float(terms[key].detach())
            if others.numel() > 1:
                sums["mm_other"] += float(terms["mm_other"])
                n_other += 1
        out = {key: v / b for key, v in sums.items()}
        out["mm_other"] = sums["mm_other"] / n_other if n_other else float("nan")
        return out

    @staticmethod
    def _as_pairs(data: Any, what: str) -> Tuple[Optional[Tuple[Tensor, List[List[str]]]], Optional[list]]:
        """``(X, captions)`` tensors+list → (pair, None); an iterable of such batches → (None, list)."""
        if isinstance(data, tuple) and len(data) == 2 and torch.is_tensor(data[0]) and not torch.is_tensor(data[1]):
            X, caps = data
            X, _ = unpack_inputs(X)
            caps = list(caps)
            if len(caps) != X.shape[0]:
                raise InputError(f"{what}: {X.shape[0]} clips but {len(caps)} captions")
            return (X, [check_prompts(c, "captions") for c in caps]), None
        if torch.is_tensor(data):
            raise InputError(f"{what}: LMAC-ZS trains on (audio, caption) pairs: pass (X, captions), not X alone")
        try:
            batches = list(data)
        except TypeError:
            raise InputError(f"{what} must be (X, captions) or an iterable of (X, captions) batches") from None
        if not batches:
            raise InputError(f"{what} holds no batches")
        out = []
        for bt in batches:
            if not (isinstance(bt, (tuple, list)) and len(bt) == 2 and torch.is_tensor(bt[0])):
                raise InputError(f"{what}: every batch must be an (X, captions) pair")
            pair, _ = LMACZS._as_pairs((bt[0], list(bt[1])), what)
            out.append(pair)
        return None, out

    @staticmethod
    def _pick(options: List[List[str]], rng: Optional[random.Random]) -> List[str]:
        """One caption per clip (random when a clip has several and ``rng`` is given, else the first)."""
        return [o[rng.randrange(len(o))] if (rng is not None and len(o) > 1) else o[0] for o in options]

    def _epoch_batches(self, pair, listed, batch_size: int, g: torch.Generator, rng: Optional[random.Random], shuffle: bool):
        if pair is not None:
            X, caps = pair
            n = X.shape[0]
            order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
            for s in range(0, n, batch_size):
                idx = order[s : s + batch_size]
                yield X[idx], self._pick([caps[int(i)] for i in idx], rng)
        else:
            for X, caps in listed:
                yield X, self._pick(caps, rng)

    def fit(
        self,
        batches: Any,
        epochs: int = 10,
        batch_size: int = 8,
        lr: float = 3e-3,
        weight_decay: float = 2e-6,
        lambda_sim: float = 1.0,
        lambda_l1: float = 0.25,
        lambda_div: float = 1.0,
        texts_per_audio: Optional[int] = None,
        val: Optional[Any] = None,
        seed: int = 0,
        progress: bool = True,
        *,
        lambda_cls: float = 0.0,
        lambda_out: float = 0.0,
        rival_texts: Union[str, Sequence[str]] = "auto",
        same_caption_threshold: float = 0.8,
        logit_scale: Optional[float] = None,
        l1_reduction: str = "mean",
        sim_floor: str = "none",
        checkpoint_dir: Optional[Any] = None,
        checkpoint_every: int = 1,
        checkpoint_steps: Optional[int] = None,
        resume: bool = False,
    ) -> Dict[str, Any]:
        r"""Train the decoder on a frozen zero-shot model; return the per-epoch history.

        Args:
            batches: ``(X, captions)`` with X (N, 1, F, T) and N captions (shuffled into
                ``batch_size`` batches each epoch), or an iterable of ``(X, captions)`` batches.
                A caption may be a list of paraphrases: one is drawn per clip and epoch (seeded).
            epochs (int): Passes over the data.
            batch_size (int): Clips per batch (each batch costs B² masked forward passes).
            lr, weight_decay (float): Adam settings (the small decoder trains faster than the
                reference's 2e-4 would allow on a CPU budget).
            lambda_sim, lambda_l1, lambda_div (float): Weights of the similarity-preservation
                term, the mask L1 term (mean |M|) and the diversity term. The L1 weight drives the
                behaviour "unrelated prompt → empty mask": removing content barely changes the
                similarity to an unrelated prompt, so its mask shrinks, while a matching prompt's
                mask must keep what the similarity depends on. On the small CLAP of the benchmark
                (12 epochs), 0.25 gave mask means 0.17 (true-class prompt) vs 0.04 (unrelated
                prompts) and better AI/AD/Fid-In than 0.5 (0.13 vs 0.04, sparser and less faithful).
            texts_per_audio (int, optional): Captions each clip is masked for (its own plus
                random others from the batch); None = all B (the paper). Lower it to save time.
            The optional terms below are off by default (the paper's loss). The esc10-zeroshot
            suite turns them on (``lambda_cls`` 1, ``lambda_out`` 0.2, ``l1_reduction="per_mask"``
            with λ_1 0.05, ``sim_floor="empty"``): in-domain AI 51.2 / AD 3.1 vs 10.0 / 55.3 with
            the paper's loss, Pearson(mask mean, similarity) 0.54 vs −0.34 (see
            ``benchmarks/results/zeroshot_esc10_round2.md``).
            lambda_cls (float): Weight of a decision term (not in the paper; 0 = off): the
                cross-entropy of the zero-shot logits ``logit_scale·t·f(M_jj ⊙ X_j)`` of the
                masked-in clip over its own caption (the target) and the ``rival_texts``, weighted
                by the clean clip's probability of its own caption over the same texts. The
                paper's loss only matches similarities, so nothing makes the mask for the clip's
                own caption keep the decision against rival prompts.
            lambda_out (float): Weight of a bounded masked-out term (0 = off):
                w_j · −log(1 − p_own((1 − M_jj) ⊙ X_j)) over the same texts and weight: the
                masked-out clip should lose its own caption.
            rival_texts (``"auto"`` or list of str): The rivals of the decision terms: ``"auto"``
                = the other captions of the batch; or fixed texts (e.g. the class prompts).
            same_caption_threshold (float): Rivals whose text-embedding cosine to the clip's own
                caption is at least this are skipped (paraphrases of the same sound).
            logit_scale (float, optional): Scale of the zero-shot logits of the decision terms
                (default: the ZeroShotClassifier's; required with a bare audio encoder).
            l1_reduction (str): ``"mean"`` (the default): λ_1 · mean |M| over all B² (clip,
                caption) masks, as the similarity term; ``"per_mask"``: λ_1 · mean |M| of every
                mask summed over a clip's captions, so each mask feels the full λ_1 (as one
                L-MAC mask does) however many captions the batch holds. The history's ``l1`` is
                mean |M| either way.
            sim_floor (str): ``"none"`` (the paper): the similarity term's targets are C_ij;
                ``"empty"``: max(C_ij, t_i·f(0)), with f(0) the embedding of an empty (all-zero)
                input. An encoder's silence is not neutral (it can match an unrelated prompt
                better than the clip does), so with the paper's targets an unrelated prompt's
                mask must keep some content to bring the similarity down to C_ij; with the floor
                the empty mask meets the target and the L1 term empties it.
            val: Validation data in the same form; the epoch with the lowest validation loss is
                kept (first caption of each clip, fixed batches).
            seed (int): Seed of the decoder's initialisation, batch order and caption choice.
            progress (bool): Show a progress bar.
            checkpoint_dir (path, optional): Write a resumable fit state there (``last.pt``: decoder,
                optimiser, RNG states, history; ``torch.load(weights_only=True)``) every
                ``checkpoint_every`` epochs, every ``checkpoint_steps`` steps and on SIGTERM / Ctrl-C
                (then :class:`~captum_lmac.errors.FitInterrupted` is raised).
            resume (bool): Continue the fit stored in ``checkpoint_dir`` exactly where it stopped
                (a missing checkpoint starts afresh). See :meth:`LearnedAttribution._run_fit` for
                streaming data and distributed (torchrun / DDP) fits.

        Returns:
            dict: lists per epoch (``loss``, ``sim``, ``l1``, ``div``, ``cls``, ``out`` (0 while
            their weights are 0), ``mm_own`` = mask mean for
            the clip's own caption, ``mm_other`` = for the other captions, and ``val_*``), plus
            ``best_epoch``, ``seconds``, ``decoder_parameters``.
        """
        lambda_sim, lambda_l1, lambda_div = (check_number(v, k, minimum=0.0) for k, v in (
            ("lambda_sim", lambda_sim), ("lambda_l1", lambda_l1), ("lambda_div", lambda_div)))
        if texts_per_audio is not None:
            texts_per_audio = check_positive_int(texts_per_audio, "texts_per_audio")
        lambda_cls = check_number(lambda_cls, "lambda_cls", minimum=0.0)
        lambda_out = check_number(lambda_out, "lambda_out", minimum=0.0)
        same_caption_threshold = check_number(same_caption_threshold, "same_caption_threshold",
                                              minimum=-1.0, maximum=1.0)
        l1_reduction = check_choice(l1_reduction, "l1_reduction", L1_REDUCTIONS)
        sim_floor = check_choice(sim_floor, "sim_floor", SIM_FLOORS)
        settings = _loss_settings(
            {"sim": lambda_sim, "l1": lambda_l1, "div": lambda_div, "cls": lambda_cls, "out": lambda_out},
            texts_per_audio=texts_per_audio, l1_reduction=l1_reduction, sim_floor=sim_floor,
            same_caption_threshold=same_caption_threshold)
        if isinstance(rival_texts, str):
            if rival_texts != "auto":
                raise InputError(f"rival_texts must be 'auto' (the other captions of the batch) or a list of texts, "
                                 f"got {rival_texts!r}")
        else:
            try:
                rivals = check_prompts(rival_texts, "rival_texts")
            except InputError as exc:
                raise InputError(f"rival_texts must be 'auto' or a non-empty list of texts ({exc})") from None
            if lambda_cls > 0 or lambda_out > 0:
                settings["rival_embeddings"] = self.embed_text(rivals)
        if lambda_cls > 0 or lambda_out > 0:
            if logit_scale is None:
                if self.zero_shot_model is None:
                    raise InputError("lambda_cls / lambda_out need the scale of the zero-shot logits: pass "
                                     "logit_scale= (or build LMACZS from a ZeroShotClassifier)")
                logit_scale = float(self.zero_shot_model.logit_scale)
            settings["scale"] = check_number(logit_scale, "logit_scale", minimum=0.0, strict_minimum=True)
        elif logit_scale is not None:
            check_number(logit_scale, "logit_scale", minimum=0.0, strict_minimum=True)
        self._fit_settings = settings
        return self._run_fit(batches, epochs, batch_size, lr, weight_decay, val, seed, progress,
                             checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                             checkpoint_steps=checkpoint_steps, resume=resume)

    def _fit_setup(self, data: Any, val: Any, batch_size: int, seed: int, progress: bool) -> FitPlan:
        rng = random.Random(seed)
        stream = data if is_stream(data) else None
        if stream is not None:
            first = stream.first_batch(1)
            if first.captions is None:
                raise InputError("LMAC-ZS trains on captioned clips: give the StreamingSpectrograms captions=... "
                                 "(e.g. LabelCaptions(classes, esc10_captions)) or meta['captions']")
            pair, listed, X0, first_caps = None, None, first.X, first.captions[0]
        else:
            pair, listed = self._as_pairs(data, "fit data")
            X0 = pair[0] if pair is not None else listed[0][0]
            first_caps = pair[1][0] if pair is not None else listed[0][1][0]
        text_dim = int(self.embed_text(check_prompts(first_caps, "captions")[:1]).shape[1])
        self._ensure_decoder(X0, text_dim)
        out_f = self.decoder.out_freqs
        for X in ([X0] if stream is not None else [pair[0]] if pair is not None else [b[0] for b in listed]):
            unpack_inputs(X, out_f)
        if is_stream(val):
            vpair, vlisted = None, _StreamPairs(val)
        else:
            vpair, vlisted = self._as_pairs(val, "val") if val is not None else (None, None)
        cfg = self._fit_settings

        def epoch(gen: torch.Generator):
            if stream is None:
                for X, caps in self._epoch_batches(pair, listed, batch_size, gen, rng, shuffle=True):
                    yield X, caps, X.shape[0]
                return
            for b in iterate_batches(stream, batch_size, gen):
                caps = [check_prompts(c, "captions") for c in b.captions]
                yield b.X, self._pick(caps, rng), b.global_size or b.X.shape[0]

        def batches(gen: torch.Generator):
            for k, (X, caps, n_global) in enumerate(epoch(gen)):
                if n_global < 2 and k > 0:
                    continue  # a trailing single clip has no other caption to contrast with
                yield X, caps, gen

        validate = None
        if val is not None:
            def validate() -> Dict[str, float]:
                return self._evaluate(vpair, vlisted, cfg, batch_size)
        return FitPlan(batches=batches, validate=validate, state=lambda: _rng_state(rng),
                       load_state=lambda value: rng.setstate(_rng_from(value)))

    def _train_step(self, batch: Any) -> Tuple[Dict[str, float], int]:
        X, caps, gen = batch
        cfg = self._fit_settings
        # back-propagates clip by clip inside (the loss splits over clips), so the terms are floats
        return self._batch_pass(X, caps, cfg, gen, train=True), X.shape[0]

    def evaluate(
        self, data: Any, lambdas: Optional[Dict[str, float]] = None, batch_size: int = 8,
        texts_per_audio: Optional[int] = None, sim_floor: str = "none",
    ) -> Dict[str, float]:
        """Loss terms and mask means of the current decoder on ``(X, captions)`` data (no training).

        ``data`` takes the forms :meth:`fit` accepts. Batches are taken in order and each clip uses
        its first caption, so the result is deterministic. ``lambdas``: keys ``sim``, ``l1``,
        ``div``, ``cls``, ``out`` (default: the :meth:`fit` defaults 1, 0.25, 1, 0, 0; the decision
        terms use the other captions of each batch as rivals and the ZeroShotClassifier's logit scale).
        ``sim_floor``: as in :meth:`fit`.
        """
        self._require_fitted()
        pair, listed = self._as_pairs(data, "evaluation data")
        given = dict(lambdas or {})
        unknown = sorted(set(given) - set(_TERMS))
        if unknown:
            raise InputError(f"unknown lambdas key(s) {unknown}; known: {', '.join(_TERMS)}")
        settings = _loss_settings(
            {"sim": 1.0, "l1": 0.25, "div": 1.0, **given}, texts_per_audio=texts_per_audio,
            sim_floor=check_choice(sim_floor, "sim_floor", SIM_FLOORS),
            scale=float(self.zero_shot_model.logit_scale) if self.zero_shot_model is not None else 1.0)
        return self._evaluate(pair, listed, settings, batch_size)

    @torch.no_grad()
    def _evaluate(self, pair, listed, settings: Dict[str, Any], batch_size: int) -> Dict[str, float]:
        self._require_fitted().eval()
        keys = ["loss", *_TERMS, "mm_own", "mm_other"]
        acc = {k: 0.0 for k in keys}
        n, n_other = 0, 0
        with eval_mode(self.model, freeze=True):
            for X, caps in self._epoch_batches(pair, listed, batch_size, torch.Generator().manual_seed(0), None, shuffle=False):
                terms = self._batch_pass(X, caps, settings, torch.Generator().manual_seed(0), train=False)
                for k in keys[:-1]:
                    acc[k] += terms[k] * X.shape[0]
                if terms["mm_other"] == terms["mm_other"]:  # not NaN (a batch of one clip has no other caption)
                    acc["mm_other"] += terms["mm_other"] * X.shape[0]
                    n_other += X.shape[0]
                n += X.shape[0]
        out = {k: v / max(n, 1) for k, v in acc.items()}
        out["mm_other"] = acc["mm_other"] / n_other if n_other else float("nan")
        return out

    # ------------------------------------------------------------------ attribution
    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        prompts: Optional[Sequence[str]] = None,
        batch_size: int = 32,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""The LMAC-ZS mask of ``inputs`` for prompt ``prompts[target]``: shape of X, values in [0, 1].

        Args:
            inputs (Tensor or 1-tuple): X (N, 1, F, T), the audio encoder's input.
            target (int, list, tensor or None): Prompt index per input; None (default) = the
                best-matching prompt (the zero-shot decision ``argmax_j t_j·a``).
            prompts (list of str, optional): The prompts (classes); any text works, also text
                never seen in training. Default: the prompts given at construction / the
                ZeroShotClassifier's.
            batch_size (int): Inputs processed at once.

        Returns:
            Tensor (or 1-tuple if ``inputs`` was a tuple): the mask M, (N, 1, F, T).
        """
        decoder = self._require_fitted()
        X, was_tuple = unpack_inputs(inputs, decoder.out_freqs, allow_silent=False)
        if prompts is None:
            if self.prompts is None:
                raise InputError("no prompts: pass prompts=[...] (or build LMACZS from a ZeroShotClassifier)")
            prompts = self.prompts
        prompts = check_prompts(prompts)
        T = self.embed_text(prompts)
        if T.shape[1] != decoder.cond_dim:
            raise InputError(f"text embeddings have {T.shape[1]} dimensions but the decoder was built for {decoder.cond_dim}")
        t_idx = format_target(target, X.shape[0], len(prompts))
        decoder.eval()
        masks = []
        with torch.no_grad(), eval_mode(self.model, freeze=True):
            for s in range(0, X.shape[0], batch_size):
                xb = X[s : s + batch_size]
                a, feats = self._audio(xb)
                Tb = T.to(xb.device, a.dtype)
                idx = (a @ Tb.t()).argmax(1) if t_idx is None else t_idx[s : s + batch_size].to(xb.device)
                masks.append(self._decode(feats, xb, Tb[idx]))
        mask = torch.cat(masks).to(X.dtype)
        return (mask,) if was_tuple else mask

    # ------------------------------------------------------------------ persistence
    @classmethod
    def _fingerprinted(cls, model: nn.Module) -> nn.Module:
        return model.audio_encoder if isinstance(model, ZeroShotClassifier) else model

    @classmethod
    def _init_kwargs(cls, model: nn.Module, meta: Dict[str, Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        init = super()._init_kwargs(model, meta, kwargs)
        prompts = meta["config"].get("prompts")
        if prompts and not isinstance(model, ZeroShotClassifier) and "prompts" not in kwargs:
            init["prompts"] = prompts  # an explicit ZeroShotClassifier brings its own prompts
        return init

    def _check_loaded(self, meta: Dict[str, Any], path: Union[str, Path], check_text_encoder: bool = True) -> None:
        text = meta["config"].get("text", {})
        probe = self.embed_text(list(text.get("probe_texts", PROBE_TEXTS)))
        if probe.shape[1] != int(text.get("dim", probe.shape[1])):
            raise CheckpointError(
                f"{path} was fitted with {text['dim']}-d text embeddings; this text encoder gives {probe.shape[1]}-d"
            )
        if check_text_encoder and "probe" in text:
            now = _text_probe(probe)
            if abs(now - float(text["probe"])) > 1e-3 * max(1.0, abs(now)):
                raise CheckpointError(
                    f"{path} was fitted with a different text encoder (probe embeddings differ); "
                    "pass the text encoder it was trained with, or check_text_encoder=False"
                )

    @classmethod
    def load(
        cls,
        path: Union[str, Path],
        audio_model: nn.Module,
        text_encoder: Optional[TextEncoder] = None,
        layers: Optional[Sequence[LayerSpec]] = None,
        check_text_encoder: bool = True,
        **kwargs: Any,
    ) -> "LMACZS":
        """Load an LMAC-ZS explainer saved by :meth:`save` (``torch.load(weights_only=True)``).

        Args:
            path: The checkpoint.
            audio_model: The ZeroShotClassifier (or audio encoder) it explains; refused
                (:class:`CheckpointError`) if its audio encoder is not the one it was fitted on.
            text_encoder (callable, optional): The text encoder (default: the ZeroShotClassifier's).
            layers: Hooked layers (default: the names stored in the checkpoint).
            check_text_encoder (bool): Refuse a text encoder whose embeddings of a few probe texts
                differ from those at saving time (a different text tower would make the decoder's
                conditioning meaningless). The embedding size is always checked.
        """
        return super().load(path, audio_model, layers=layers, text_encoder=text_encoder,
                            check_text_encoder=check_text_encoder, **kwargs)


__all__ = ["LMACZS", "PROBE_TEXTS"]
