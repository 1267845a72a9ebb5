"""Light-curve encoder + prototypical head (torch only, no Ray)."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ProtoNetConfig:
    """Architecture; stored with the weights so any model can be rebuilt."""

    seq_channels: int
    n_feats: int
    hidden: int = 64
    embed_dim: int = 32
    layers: int = 1
    dropout: float = 0.1
    time_periods: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)  # days; sin/cos time encodings
    t_scale_days: float = 100.0  # the sequence's ``t_rel`` channel is days / t_scale_days
    # hybrid embedding: the features, whitened by their within-class covariance on the training
    # objects (a fixed linear map, :func:`within_class_whitening`), are appended to the learned
    # embedding, so squared distances in that block are Gaussian (LDA) log-likelihoods
    feature_block: bool = True
    # with a feature block, the learned part (trained by episodes on its own) is L2-normalised and
    # scaled by this: a bounded correction (squared distances at most (2 * learned_scale)^2) to the
    # feature block's distances
    learned_scale: float = 0.5
    whiten_shrinkage: float = 0.2  # covariance shrinkage towards its mean variance
    # the features enter as normal scores of their ranks among the training objects (a fixed
    # per-feature monotone map, :func:`feature_quantiles` / :func:`normal_scores`; a missing
    # feature scores 0, the median), so heavy tails (fade rates, chi2) do not swamp the covariance
    quantile_features: bool = True
    # open-set score in the span of the prototypes (:meth:`ProtoNetClassifier.novelty`): the
    # directions that separate the known classes, not the noise of the others
    novelty_subspace: bool = True
    # decision rule: logits = -d^2 / 2 + prior_weight * log(class prior count); classes registered
    # from examples (no count of their own) take registered_prior_count
    prior_weight: float = 1.0
    registered_prior_count: float = 20.0
    # context (cosmic_ray.learn.context_features): the fields the learned encoder reads (values +
    # missing-value indicators; empty: none) and the chance a field is hidden from it in training
    context_fields: tuple[str, ...] = ()
    context_dropout: float = 0.3
    # open-set score: "mixture" (minus the log-density of the prior-weighted mixture of the known
    # classes) or "min_distance" (the smallest class-conditional distance: rare known classes are
    # not punished for being rare)
    novelty_rule: str = "mixture"
    # whether the open-set score reads the context block too (measured: it lowers the open-set AUROC
    # on the BTS folds, 0.81 -> 0.75 at alert time: the rare classes' hosts sit inside the known ones')
    novelty_context: bool = False
    # what the episodes train: "learned_only" (the learned part alone, raw Euclidean) or
    # "embedding" (the whole embedding, normalised and scaled as the classifier reads it)
    episode_distance: str = "learned_only"
    # the decision rule's prior weight chosen for macro-F1 on the training objects (leave-one-out),
    # not fixed at prior_weight
    tune_prior_weight: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_periods", tuple(float(p) for p in self.time_periods))
        object.__setattr__(self, "context_fields", tuple(str(f) for f in self.context_fields))
        if self.novelty_rule not in ("mixture", "min_distance"):
            raise ValueError(f"novelty_rule must be 'mixture' or 'min_distance', not {self.novelty_rule!r}")
        if self.episode_distance not in ("learned_only", "embedding"):
            raise ValueError(f"episode_distance must be 'learned_only' or 'embedding', not {self.episode_distance!r}")

    @property
    def out_dim(self) -> int:
        """Width of the embedding the prototypes live in (learned part + whitened features)."""
        return self.embed_dim + (self.n_feats if self.feature_block else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LightCurveEncoder(nn.Module):
    """GRU over the irregular multi-band sequence (with sinusoidal time encodings) + MLP over the
    extracted features; the GRU's last state and its masked mean over time are both used."""

    # buffers (register_buffer), declared for the type checker
    omega: torch.Tensor  # (P,) angular frequencies of the time encodings
    feat_whiten: torch.Tensor  # (F, F), with a feature block
    feat_quantiles: torch.Tensor  # (Q, F), with quantile features

    def __init__(self, cfg: ProtoNetConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.register_buffer("omega", 2 * math.pi / torch.tensor(cfg.time_periods), persistent=False)
        n_in = cfg.seq_channels + 2 * len(cfg.time_periods)
        self.inp = nn.Sequential(nn.Linear(n_in, h), nn.GELU())
        self.gru = nn.GRU(h, h, num_layers=cfg.layers, batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        n_ctx = 2 * len(cfg.context_fields)  # values + missing-value indicators
        self.feat_mlp = nn.Sequential(
            nn.Linear(cfg.n_feats + n_ctx, h), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(h, h), nn.GELU()
        )
        self.head = nn.Sequential(nn.Linear(3 * h, h), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(h, cfg.embed_dim))
        if cfg.feature_block:
            # fixed (not trained) map of the normalised features; set from the training objects
            self.register_buffer("feat_whiten", torch.eye(cfg.n_feats))
        if cfg.quantile_features:
            # (Q, F) quantiles of the normalised features on the training objects (fixed)
            self.register_buffer("feat_quantiles", torch.zeros(QUANTILE_LEVELS, cfg.n_feats))

    def set_feature_whitening(self, matrix: np.ndarray | torch.Tensor | None) -> None:
        """Install the (F, F) whitening of :func:`within_class_whitening` (no-op without a feature block)."""
        if self.cfg.feature_block and matrix is not None:
            self.feat_whiten.copy_(torch.as_tensor(matrix, dtype=self.feat_whiten.dtype))

    def set_feature_quantiles(self, quantiles: np.ndarray | torch.Tensor | None) -> None:
        """Install the (Q, F) quantiles of :func:`feature_quantiles` (no-op without ``quantile_features``)."""
        if self.cfg.quantile_features and quantiles is not None:
            self.feat_quantiles.copy_(torch.as_tensor(quantiles, dtype=self.feat_quantiles.dtype))

    def feature_input(self, feats: torch.Tensor) -> torch.Tensor:
        """Normalised features (NaN where missing) -> what the feature MLP and block read, (B, F)."""
        if self.cfg.quantile_features:
            return normal_scores(feats, self.feat_quantiles)
        return torch.nan_to_num(feats, nan=0.0)

    def forward(
        self,
        seq: torch.Tensor,
        length: torch.Tensor,
        feats: torch.Tensor,
        learned_only: bool = False,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # seq (B, L, C), length (B,), feats (B, F) -> (B, D + F) with a feature block, else (B, D)
        # learned_only: the learned part alone, before its normalisation (what episodes train)
        # context: (B, 2 * len(context_fields)) encoder_inputs of the context; None: nothing known
        b, seq_len, _ = seq.shape
        days = seq[..., :1] * self.cfg.t_scale_days  # (B, L, 1) days since first detection
        phase = days * self.omega  # (B, L, P)
        x = self.inp(torch.cat([seq, torch.sin(phase), torch.cos(phase)], dim=-1))  # (B, L, H)
        lengths = length.clamp(min=1, max=seq_len).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h = self.gru(packed)  # h (layers, B, H)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=seq_len)  # (B, L, H)
        mask = (torch.arange(seq_len, device=seq.device)[None, :] < lengths.to(seq.device)[:, None]).unsqueeze(-1)
        mean = (out * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # (B, H)
        feats = self.feature_input(feats)  # (B, F)
        mlp_in = feats
        n_ctx = len(self.cfg.context_fields)
        if n_ctx:
            if context is None:  # nothing known: values 0, every indicator set
                context = torch.cat([torch.zeros(b, n_ctx), torch.ones(b, n_ctx)], dim=1).to(feats)
            mlp_in = torch.cat([feats, context.to(feats.dtype)], dim=-1)  # (B, F + 2C)
        z = torch.cat([h[-1], mean, self.feat_mlp(mlp_in)], dim=-1)  # (B, 3H)
        out = self.head(z)  # (B, D)
        if self.cfg.feature_block and not learned_only:
            out = self.cfg.learned_scale * nn.functional.normalize(out, dim=-1)
            out = torch.cat([out, feats @ self.feat_whiten.to(feats.dtype)], dim=-1)  # (B, D + F)
        return out


def normalise_features(feats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(feats - mean) / std`` clipped to +-5, NaN kept (a missing feature): the one normalisation
    of training (:class:`~cosmic_ray.learn.trainset.FeatureStats`) and serving (the classifier)."""
    with np.errstate(invalid="ignore"):
        z = (np.asarray(feats, dtype=np.float64) - mean) / std
    return np.clip(np.nan_to_num(z, nan=np.nan, posinf=5.0, neginf=-5.0), -5, 5).astype(np.float32)


QUANTILE_LEVELS = 101
_TAIL = 0.00135  # the outermost quantiles score -+3


def feature_quantiles(feats: np.ndarray, levels: int = QUANTILE_LEVELS) -> np.ndarray:
    """(Q, F) quantiles of each feature over the objects where it is not missing (NaN).

    A feature missing everywhere gets all-zero quantiles (it then scores 0 for every object).
    """
    feats = np.asarray(feats, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        q = np.nanquantile(feats, np.linspace(0.0, 1.0, levels), axis=0)  # (Q, F)
    return np.nan_to_num(q, nan=0.0).astype(np.float32)


def normal_scores(feats: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Each feature through its empirical distribution to a standard-normal score, (B, F) -> (B, F).

    Piecewise linear between the ``quantiles`` (Q, F) of :func:`feature_quantiles`; a value tied
    with several quantiles takes the middle of their scores; values beyond the training range
    score -+3; missing values (NaN) score 0.
    """
    q = quantiles.to(feats.dtype).t().contiguous()  # (F, Q)
    n_levels = q.shape[1]
    levels = torch.linspace(_TAIL, 1.0 - _TAIL, n_levels, dtype=feats.dtype, device=feats.device)
    z = torch.special.ndtri(levels)  # (Q,)
    missing = torch.isnan(feats)
    x = torch.nan_to_num(feats, nan=0.0).t().contiguous()  # (F, B)
    lo = torch.searchsorted(q, x, right=False)  # (F, B) first quantile >= x
    hi = torch.searchsorted(q, x, right=True)  # (F, B) first quantile > x
    tied = 0.5 * (z[lo.clamp(max=n_levels - 1)] + z[(hi - 1).clamp(min=0)])  # x equals quantiles lo .. hi-1
    j = lo.clamp(1, n_levels - 1)  # otherwise x lies between quantiles j-1 and j (or beyond the ends)
    x0, x1 = q.gather(1, j - 1), q.gather(1, j)
    frac = ((x - x0) / (x1 - x0).clamp(min=1e-12)).clamp(0.0, 1.0)
    between = z[j - 1] + frac * (z[j] - z[j - 1])
    out = torch.where(lo < hi, tied, between)  # (F, B)
    return torch.where(missing, torch.zeros_like(feats), out.t())


def within_class_whitening(feats: np.ndarray, labels: np.ndarray, shrinkage: float = 0.2) -> np.ndarray:
    """(F, F) matrix W such that ``feats @ W`` has unit within-class covariance (shrunk).

    The pooled covariance of ``feats`` about their class means is shrunk towards its mean variance
    (``(1 - s) C + s tr(C)/F I``) so that classes of a handful of objects cannot make it singular.
    Nearest-prototype classification in the whitened space is linear discriminant analysis.

    Args:
        feats: (N, F) normalised features.
        labels: (N,) integer classes.
        shrinkage: s in [0, 1].
    """
    feats = np.asarray(feats, dtype=np.float64)
    labels = np.asarray(labels)
    resid = np.concatenate([feats[labels == c] - feats[labels == c].mean(axis=0) for c in np.unique(labels)])  # (N, F)
    cov = resid.T @ resid / max(len(resid) - len(np.unique(labels)), 1)  # (F, F)
    f = cov.shape[0]
    cov = (1.0 - shrinkage) * cov + shrinkage * np.trace(cov) / f * np.eye(f)
    values, vectors = np.linalg.eigh(cov)
    return (vectors / np.sqrt(np.maximum(values, 1e-6))).astype(np.float32)  # (F, F)


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean embedding per class: (N, D), (N,) -> (n_classes, D). Classes without members get NaN."""
    d = embeddings.shape[-1]
    sums = torch.zeros(n_classes, d, dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=n_classes).to(embeddings.dtype).unsqueeze(1)
    return sums / counts  # 0/0 -> NaN for empty classes


def squared_distances(x: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N, K) squared Euclidean distances.

    Expanded as ``|x|^2 + |p|^2 - 2 x.p`` and clamped at 0: finite gradients at zero distance
    (``cdist(...).pow(2)`` differentiates the square root there: NaN).
    """
    x2 = (x * x).sum(dim=-1, keepdim=True)  # (N, 1)
    p2 = (protos * protos).sum(dim=-1).unsqueeze(0)  # (1, K)
    return (x2 + p2 - 2.0 * x @ protos.transpose(-1, -2)).clamp(min=0.0)  # (N, K)


def proto_logits(query: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Logits are negative squared distances to the prototypes: (N, D), (K, D) -> (N, K)."""
    return -squared_distances(query, protos)


def episode_loss(
    embed_support: torch.Tensor, embed_query: torch.Tensor, n_way: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prototypical loss of one episode.

    Args:
        embed_support: (n_way * k_shot, D), class-major order.
        embed_query: (n_way * n_query, D), class-major order.

    Returns:
        (loss, accuracy) scalars.
    """
    k = embed_support.shape[0] // n_way
    q = embed_query.shape[0] // n_way
    protos = embed_support.view(n_way, k, -1).mean(dim=1)  # (n_way, D)
    logits = proto_logits(embed_query, protos)  # (n_way*q, n_way)
    target = torch.arange(n_way, device=logits.device).repeat_interleave(q)
    loss = nn.functional.cross_entropy(logits, target)
    acc = (logits.argmax(dim=1) == target).float().mean()
    return loss, acc
