"""A trained ProtoNet ready to answer: encoder + prototypes + open-set calibration + neighbours.

Saved as a folder (``weights.pt``, ``bundle.json``, ``arrays.npz``) that MLflow stores as the
model's artifact, signed by the trainer (:mod:`cosmic_ray.learn.signing`). Read back with formats
that cannot run code: tensors only (``weights_only``), arrays without pickles, JSON.
Importable with numpy + torch alone.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosmic_ray.core.context import DEFAULT_MODE, FEATURE_FIELDS
from cosmic_ray.core.errors import IncompatibleModelError, UntrustedModelError
from cosmic_ray.learn.context_features import (
    ContextBlock,
    ContextStats,
    context_matrix,
    encoder_inputs,
    fit_context_block,
    mean_present,
)
from cosmic_ray.learn.decision import (
    FULL,
    age_bucket,
    ages_from_sequences,
    leave_one_out,
    prototype_span,
    tune_prior_weight,
)
from cosmic_ray.learn.model import LightCurveEncoder, ProtoNetConfig, normalise_features, squared_distances
from cosmic_ray.learn.train import TrainingSet

#: Per object: its context (FEATURE_FIELDS -> value or None), or None when nothing is known.
Contexts = Sequence[Mapping[str, float | None] | None]

OUTLIER_SD = 8.0  # novelty: squared distance off the prototypes' span counts beyond mean + this many sd


@dataclass
class Prediction:
    object_id: str
    label: str
    probabilities: dict[str, float]
    open_set_score: float
    novel: bool
    neighbours: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ProtoNetClassifier:
    arch: ProtoNetConfig
    state_dict: dict[str, torch.Tensor]
    class_names: list[str]
    prototypes: np.ndarray  # (K, D)
    feat_mean: np.ndarray  # (F,)
    feat_std: np.ndarray  # (F,)
    calibration: np.ndarray  # sorted nearest-prototype distances of held-out known-class objects
    ref_embeddings: np.ndarray  # (R, D) reference objects for explanation by example
    ref_ids: np.ndarray  # (R,)
    ref_labels: np.ndarray  # (R,)
    max_len: int
    meta: dict[str, Any] = field(default_factory=dict)
    novelty_threshold: float = 0.95
    prior_counts: np.ndarray | None = None  # (K,) class prior counts of the decision rule; None: equal priors
    # context (cosmic_ray.learn.context_features): standardisation of the transformed FEATURE_FIELDS
    # (needed when the encoder reads context or a context block is on) ...
    context_mean: np.ndarray | None = None  # (len(FEATURE_FIELDS),)
    context_std: np.ndarray | None = None
    # ... and the context block of the decision rule: with it, embeddings and prototypes are
    # [encoder output (arch.out_dim), standardised context (len(FEATURE_FIELDS), NaN missing)]
    context_cov: np.ndarray | None = None  # (len(FEATURE_FIELDS),) * 2 pooled within-class covariance
    tuned_prior_weight: float | None = None  # the decision rule's prior weight when tuned (else arch's)
    # age-matched prototypes: bucket ("3", "10", "30") -> (K, D) prototypes of light curves cut that
    # long after their first detection; a light curve is read by the set of its age (decision.age_bucket)
    age_prototypes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._encoder = LightCurveEncoder(self.arch)
        self._encoder.load_state_dict(self.state_dict)
        self._encoder.eval()

    # --- context ---
    @property
    def context_block(self) -> ContextBlock | None:
        """The decision rule's context block (None: the model reads no context there)."""
        return None if self.context_cov is None else ContextBlock(covariance=np.asarray(self.context_cov))

    @property
    def lc_dim(self) -> int:
        """Width of the encoder's part of an embedding (the rest, with a context block, is context)."""
        return self.arch.out_dim

    @property
    def emb_dim(self) -> int:
        return self.lc_dim + (len(FEATURE_FIELDS) if self.context_cov is not None else 0)

    def context_values(self, contexts: Contexts | None, n: int, mode: str = DEFAULT_MODE) -> np.ndarray:
        """(N, len(FEATURE_FIELDS)) standardised context that ``mode`` shows, NaN where missing."""
        matrix = context_matrix(contexts, n, mode)
        if self.context_mean is None or self.context_std is None:
            return matrix
        return ContextStats(np.asarray(self.context_mean), np.asarray(self.context_std)).standardise(matrix)

    def prior_weight(self) -> float:
        """The weight of ``log(count)`` in the logits: tuned if the model was tuned, else ``arch.prior_weight``."""
        return float(self.arch.prior_weight if self.tuned_prior_weight is None else self.tuned_prior_weight)

    def prototype_of(self, emb: np.ndarray) -> np.ndarray:
        """(n, D) embeddings of a class's examples -> (D,) its prototype (context: mean over those that have it)."""
        emb = np.asarray(emb, dtype=np.float64)
        lc = emb[:, : self.lc_dim].mean(axis=0)
        if self.context_cov is None:
            return lc.astype(np.float32)
        return np.concatenate([lc, mean_present(emb[:, self.lc_dim :])]).astype(np.float32)

    def _own_span(self) -> np.ndarray:
        """:func:`prototype_span` of this classifier's prototypes, computed once per prototype array
        (an SVD per served batch otherwise); a new array assigned to ``prototypes`` is seen."""
        cached = getattr(self, "_span_cache", None)
        if cached is None or cached[0] is not self.prototypes:
            cached = (self.prototypes, prototype_span(self.prototypes[:, : self.lc_dim]))
            self._span_cache = cached
        return cached[1]

    # --- inputs ---
    def normalise_feats(self, feats: np.ndarray) -> np.ndarray:
        return normalise_features(feats, self.feat_mean, self.feat_std)  # NaN kept: the encoder scores missing features

    @torch.inference_mode()  # no autograd bookkeeping at all (~0.5 ms less per call than no_grad here)
    def embed(
        self,
        seq: np.ndarray,
        length: np.ndarray,
        feats: np.ndarray,
        contexts: Contexts | None = None,
        mode: str = DEFAULT_MODE,
    ) -> np.ndarray:
        """(N, L, C), (N,), raw (N, F) -> (N, D) embeddings.

        Args:
            contexts: per object its context (or None: nothing known); None for all: none known.
            mode: the context mode (:data:`~cosmic_ray.core.context.MODES`) that hides fields.
        """
        if len(seq) == 0:
            return np.zeros((0, self.emb_dim), dtype=np.float32)
        ctx = self.context_values(contexts, len(seq), mode)  # (N, len(FEATURE_FIELDS))
        enc_ctx = None
        if self.arch.context_fields:
            cols = [FEATURE_FIELDS.index(f) for f in self.arch.context_fields]
            enc_ctx = torch.from_numpy(encoder_inputs(ctx[:, cols]))
        out = self._encoder(
            torch.from_numpy(np.ascontiguousarray(seq, dtype=np.float32)),
            torch.from_numpy(np.asarray(length, dtype=np.int64)),
            torch.from_numpy(self.normalise_feats(feats)),
            context=enc_ctx,
        ).numpy()
        if self.context_cov is not None:
            out = np.concatenate([out, ctx.astype(np.float32)], axis=1)  # (N, D + len(FEATURE_FIELDS))
        return out

    # --- classes from examples (no retraining) ---
    def with_class(
        self,
        name: str,
        seq: np.ndarray,
        length: np.ndarray,
        feats: np.ndarray,
        contexts: Contexts | None = None,
        mode: str = DEFAULT_MODE,
    ) -> ProtoNetClassifier:
        """A copy of this classifier that also knows class ``name``, learned from K examples.

        The prototype is the mean embedding of the examples; the encoder, the other prototypes
        and the open-set calibration are unchanged. A class that exists already has its prototype
        replaced by the one of these examples. This object is not modified.

        Args:
            name: the class name (e.g. ``"SLSN-I"``).
            seq: (K, L, C) sequences of the examples, as :func:`~cosmic_ray.learn.features.featurize` makes them.
            length: (K,) points per example.
            feats: (K, F) raw (not normalised) features of the examples.
            contexts: the examples' contexts (None: none known); ``mode`` hides fields.

        Age-matched prototype sets get this class's full prototype at every age.

        Returns:
            The new classifier; ``meta["registered_classes"][name]`` records K.

        Raises:
            ValueError: no examples, or arrays that do not fit the model.
        """
        seq = np.asarray(seq, dtype=np.float32)
        if len(seq) == 0:
            raise ValueError(f"class {name!r} needs at least one example light curve")
        if seq.ndim != 3 or seq.shape[2] != self.arch.seq_channels or np.shape(feats)[-1] != self.arch.n_feats:
            raise ValueError(
                f"examples of shape {seq.shape} / feats {np.shape(feats)} do not fit the model "
                f"(L, {self.arch.seq_channels}) / ({self.arch.n_feats},): featurize them with max_len={self.max_len}"
            )
        proto = self.prototype_of(self.embed(seq, length, feats, contexts, mode))  # (D,)
        names = list(self.class_names)
        counts = None if self.prior_counts is None else self.counts().copy()  # a model without priors stays without

        def placed(protos: np.ndarray) -> np.ndarray:
            if name in names:
                out = protos.copy()
                out[names.index(name)] = proto
                return out
            return np.concatenate([protos, proto[None, :]]).astype(np.float32)  # (K + 1, D)

        protos = placed(self.prototypes)
        ages = {bucket: placed(p) for bucket, p in self.age_prototypes.items()}
        if name not in names:
            names.append(name)
            counts = None if counts is None else np.append(counts, self.arch.registered_prior_count)
        meta = {**self.meta, "registered_classes": {**self.meta.get("registered_classes", {}), name: int(len(seq))}}
        return self._copy(class_names=names, prototypes=protos, meta=meta, prior_counts=counts, age_prototypes=ages)

    def without_class(self, name: str) -> ProtoNetClassifier:
        """A copy without class ``name``'s prototype (leave-one-class-out open-set evaluation)."""
        keep = [i for i, c in enumerate(self.class_names) if c != name]
        return self._copy(
            class_names=[self.class_names[i] for i in keep],
            prototypes=self.prototypes[keep],
            prior_counts=None if self.prior_counts is None else self.counts()[keep],
            age_prototypes={bucket: p[keep] for bucket, p in self.age_prototypes.items()},
        )

    def _copy(self, **changes: Any) -> ProtoNetClassifier:
        clone = dataclasses.replace(self, **changes)  # rebuilds the encoder from the same weights
        return clone

    # --- scores ---
    def counts(self) -> np.ndarray:
        """(K,) prior counts of the decision rule (ones where the model has none: equal priors)."""
        if self.prior_counts is None or len(self.prior_counts) != len(self.class_names):
            return np.ones(len(self.class_names))
        return np.asarray(self.prior_counts, dtype=float)

    def class_logits(
        self, emb: np.ndarray, protos: np.ndarray | None = None, counts: np.ndarray | None = None
    ) -> np.ndarray:
        """Log-posteriors up to a constant: ``-d^2 / 2 + prior_weight * log(count)``, (N, D) -> (N, K).

        ``protos``/``counts`` default to the model's; evaluation passes other prototype sets
        (registered support draws, leave-one-class-out)."""
        protos = self.prototypes if protos is None else protos
        counts = self.counts() if counts is None else np.asarray(counts, dtype=float)
        return -0.5 * self.distances(emb, protos) + self.prior_weight() * np.log(np.maximum(counts, 1e-9))  # (N, K)

    def distances(self, emb: np.ndarray, protos: np.ndarray) -> np.ndarray:
        """(N, D), (K, D) -> (N, K) squared distances: Euclidean in the encoder's part, plus, with a
        context block, the Mahalanobis distance over the context fields each object has."""
        emb, protos = np.asarray(emb), np.asarray(protos)
        d = min(self.lc_dim, emb.shape[1])
        d2 = squared_distances(
            torch.from_numpy(np.ascontiguousarray(emb[:, :d], dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(protos[:, :d], dtype=np.float32)),
        ).numpy()
        block = self.context_block
        if block is not None and emb.shape[1] > d:
            d2 = d2 + block.distances(emb[:, d:], protos[:, d:])
        return d2  # (N, K)

    def novelty(
        self, emb: np.ndarray, protos: np.ndarray | None = None, counts: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw open-set score: minus the log-density of ``emb`` under the prior-weighted mixture of the
        known classes (high far from every prototype, and near the prototypes of rare classes only).

        With ``arch.novelty_subspace`` the density is read in the span of the prototypes (the
        directions that separate the known classes; :func:`prototype_span`): the many other
        directions hold mostly the spread of each object, which buries what sets an unknown class
        apart. An object far off that span still scores high: the part of its squared distance
        there beyond ``OUTLIER_SD`` standard deviations of a chi-square of that many directions
        (the unit within-class spread of the whitened block) is added, halved like a log-density."""
        protos = self.prototypes if protos is None else np.asarray(protos)
        own = protos is self.prototypes
        emb = np.asarray(emb, dtype=np.float32)
        d = self.lc_dim
        ctx_d2 = None
        block = self.context_block
        if block is not None and emb.shape[1] > d:  # the context part: marginal distances, read aside
            if getattr(self.arch, "novelty_context", False):
                ctx_d2 = block.distances(emb[:, d:], protos[:, d:])  # (N, K)
                dof_ctx = block.present_counts(emb[:, d:])  # (N,)
            emb, protos = emb[:, :d], protos[:, :d]
        outlier: np.ndarray | float = 0.0
        if getattr(self.arch, "novelty_subspace", False) and len(protos) > 1:
            basis = self._own_span() if own else prototype_span(protos)  # (D, r)
            centred = emb - np.mean(protos, axis=0)  # (N, D)
            off = np.square(centred - (centred @ basis) @ basis.T).sum(axis=1)  # (N,) squared distance off the span
            dof = emb.shape[1] - basis.shape[1]
            outlier = 0.5 * np.maximum(off - (dof + OUTLIER_SD * np.sqrt(2.0 * dof)), 0.0)
            emb, protos = emb @ basis, protos.astype(np.float32) @ basis
        d2 = squared_distances(
            torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(protos, dtype=np.float32)),
        ).numpy()
        d2 = d2.astype(np.float64)  # (N, K)
        if ctx_d2 is not None:
            d2 = d2 + ctx_d2 - dof_ctx[:, None]  # an object with more fields is not farther for it
        if getattr(self.arch, "novelty_rule", "mixture") == "min_distance":
            return 0.5 * d2.min(axis=1) + outlier  # (N,) the nearest known class, whatever its prior
        counts = self.counts() if counts is None else np.asarray(counts, dtype=float)
        # the arch's prior weight, not the tuned one: tuned for macro-F1, it lowered the AUROC (0.81 -> 0.77)
        logits = -0.5 * d2 + self.arch.prior_weight * np.log(np.maximum(counts, 1e-9))
        top = logits.max(axis=1)
        return -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1))) + outlier  # (N,)

    def open_set_score(self, novelty: np.ndarray) -> np.ndarray:
        """Fraction of held-out known-class objects with a lower :meth:`novelty`: ~U(0,1) for known, -> 1 for unknown."""
        return np.searchsorted(self.calibration, novelty, side="right") / max(len(self.calibration), 1)

    def age_matched_logits(
        self,
        emb: np.ndarray,
        ages: np.ndarray | None,
        protos: np.ndarray | Mapping[str, np.ndarray] | None = None,
        counts: np.ndarray | None = None,
    ) -> np.ndarray:
        """:meth:`class_logits` with each object read by the prototype set of its age (days after its
        first detection; :func:`~cosmic_ray.learn.decision.age_bucket`); the full prototypes for
        light curves older than the last set, for every object when ``ages`` is None or the model
        has no age-matched sets. ``protos`` (evaluation's prototype sets) is a full set or a
        mapping bucket -> set."""
        sets: Mapping[str, np.ndarray]
        if isinstance(protos, Mapping):
            sets = protos
        else:
            sets = {FULL: self.prototypes if protos is None else protos}
            if protos is None:
                sets = {**self.age_prototypes, FULL: self.prototypes}
        logits = self.class_logits(emb, sets[FULL], counts)
        if ages is None or len(sets) == 1:
            return logits
        buckets = age_bucket(np.asarray(ages))
        for bucket, protos_b in sets.items():
            rows = np.flatnonzero(buckets == bucket)
            if bucket != FULL and len(rows):
                logits[rows] = self.class_logits(emb[rows], protos_b, counts)
        return logits

    def ages(self, seq: np.ndarray, length: np.ndarray) -> np.ndarray:
        """(N,) each light curve's age in days (first detection to last point)."""
        return ages_from_sequences(seq, length, self.arch.t_scale_days)

    def predict_arrays(
        self,
        object_ids: np.ndarray,
        seq: np.ndarray,
        length: np.ndarray,
        feats: np.ndarray,
        neighbours: int = 5,
        contexts: Contexts | None = None,
        mode: str = DEFAULT_MODE,
        ages: np.ndarray | None = None,
    ) -> list[Prediction]:
        """Predictions per object.

        Args:
            contexts: per object its context (None: nothing known); ``mode`` hides fields.
            ages: (N,) days since each object's first detection (an alert's ``jdstarthist``)
                choosing its age-matched prototypes; default: from its light curve.
        """
        emb = self.embed(seq, length, feats, contexts, mode)  # (N, D)
        if ages is None and self.age_prototypes:
            ages = self.ages(seq, length)
        logits = self.age_matched_logits(emb, ages)  # (N, K)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        scores = self.open_set_score(self.novelty(emb))
        preds = []
        ref_d = None
        if neighbours and len(self.ref_embeddings):
            d = self.lc_dim  # neighbours by light curve (and features), not context
            ref_d = np.sqrt(
                squared_distances(
                    torch.from_numpy(np.ascontiguousarray(emb[:, :d])),
                    torch.from_numpy(np.ascontiguousarray(self.ref_embeddings[:, :d])),
                ).numpy()
            )
        for i, oid in enumerate(object_ids):
            near = []
            if ref_d is not None:
                order = np.argsort(ref_d[i])[:neighbours]
                near = [
                    {
                        "object_id": str(self.ref_ids[j]),
                        "label": str(self.ref_labels[j]),
                        "distance": float(ref_d[i, j]),
                    }
                    for j in order
                ]
            preds.append(
                Prediction(
                    object_id=str(oid),
                    label=self.class_names[int(probs[i].argmax())],
                    probabilities={c: float(p) for c, p in zip(self.class_names, probs[i], strict=False)},
                    open_set_score=float(scores[i]),
                    novel=bool(scores[i] > self.novelty_threshold),
                    neighbours=near,
                )
            )
        return preds

    def predict_features(
        self,
        arrays: dict[str, np.ndarray],
        neighbours: int = 5,
        contexts: Contexts | None = None,
        mode: str = DEFAULT_MODE,
    ) -> list[Prediction]:
        return self.predict_arrays(
            arrays["object_id"], arrays["seq"], arrays["length"], arrays["feats"], neighbours, contexts, mode
        )

    # --- persistence ---
    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict, folder / "weights.pt")
        np.savez(
            folder / "arrays.npz",
            allow_pickle=False,  # plain numeric and string arrays only
            prototypes=self.prototypes,
            feat_mean=self.feat_mean,
            feat_std=self.feat_std,
            calibration=self.calibration,
            ref_embeddings=self.ref_embeddings,
            ref_ids=self.ref_ids.astype(str),
            ref_labels=self.ref_labels.astype(str),
            **({} if self.prior_counts is None else {"prior_counts": self.counts()}),
            **{
                name: value
                for name, value in (
                    ("context_mean", self.context_mean),
                    ("context_std", self.context_std),
                    ("context_cov", self.context_cov),
                )
                if value is not None
            },
            **{f"age_prototypes_{bucket}": p for bucket, p in self.age_prototypes.items()},
        )
        bundle = {
            "arch": self.arch.to_dict(),
            "class_names": self.class_names,
            "max_len": self.max_len,
            "meta": self.meta,
            "novelty_threshold": self.novelty_threshold,
            "feature_names": _current_feature_names(),
            "tuned_prior_weight": self.tuned_prior_weight,
        }
        (folder / "bundle.json").write_text(json.dumps(bundle, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> ProtoNetClassifier:
        """Rebuild a saved classifier (check its signature first: :func:`cosmic_ray.learn.signing.verify_bundle`).

        Raises:
            IncompatibleModelError: it was trained on features this code no longer computes (a model
                of an older release): it could only answer with errors, so it is refused here.
            UntrustedModelError: ``weights.pt`` or ``arrays.npz`` holds more than tensors and plain arrays.
        """
        folder = Path(folder)
        bundle = json.loads((folder / "bundle.json").read_text())
        _check_features(bundle)
        try:
            state_dict = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
            with np.load(folder / "arrays.npz", allow_pickle=False) as npz:  # object arrays: ValueError
                arrays = {name: npz[name] for name in npz.files}
        except (pickle.UnpicklingError, ValueError) as exc:
            raise UntrustedModelError(
                f"model bundle {folder} holds more than plain tensors and arrays (pickled objects): refused"
            ) from exc
        bundle["arch"].setdefault("feature_block", False)  # models saved before the hybrid embedding
        bundle["arch"].setdefault("quantile_features", False)  # ... before features entered as normal scores
        bundle["arch"].setdefault("novelty_subspace", False)  # ... before the open-set score in the prototypes' span
        return cls(
            arch=ProtoNetConfig(**bundle["arch"]),
            state_dict=state_dict,
            class_names=list(bundle["class_names"]),
            prototypes=arrays["prototypes"],
            feat_mean=arrays["feat_mean"],
            feat_std=arrays["feat_std"],
            calibration=arrays["calibration"],
            ref_embeddings=arrays["ref_embeddings"],
            ref_ids=arrays["ref_ids"],
            ref_labels=arrays["ref_labels"],
            max_len=int(bundle["max_len"]),
            meta=bundle.get("meta", {}),
            novelty_threshold=float(bundle.get("novelty_threshold", 0.95)),
            prior_counts=arrays.get("prior_counts"),
            context_mean=arrays.get("context_mean"),
            context_std=arrays.get("context_std"),
            context_cov=arrays.get("context_cov"),
            tuned_prior_weight=bundle.get("tuned_prior_weight"),
            age_prototypes={
                name.removeprefix("age_prototypes_"): value
                for name, value in arrays.items()
                if name.startswith("age_prototypes_")
            },
        )


def _current_feature_names() -> list[str]:
    # deferred: features needs pyarrow and light-curve; the training path has torch + ray + numpy only
    from cosmic_ray.learn.features import feature_names

    return feature_names()


def _check_features(bundle: dict[str, Any]) -> None:
    current = _current_feature_names()
    saved = bundle.get("feature_names")
    n_saved = len(saved) if saved is not None else int(bundle["arch"]["n_feats"])
    if (saved is not None and saved != current) or n_saved != len(current):
        changed = sorted(set(saved or []) ^ set(current))[:6] if saved is not None else []
        raise IncompatibleModelError(
            f"this model was trained on {n_saved} light-curve features, this code computes {len(current)}"
            + (f" (differing: {', '.join(changed)}...)" if changed else "")
            + ": retrain it (`cosmic-ray train`) with this release"
        )


def build_classifier(
    state_dict: dict[str, torch.Tensor],
    arch: ProtoNetConfig,
    data: TrainingSet,
    feat_mean: np.ndarray,
    feat_std: np.ndarray,
    max_len: int,
    meta: dict[str, Any] | None = None,
    max_refs: int = 5000,
) -> ProtoNetClassifier:
    """Turn trained weights into a classifier: prototypes from the training objects, class prior
    counts from the labelled data (before any per-class cap), open-set calibration from the
    held-out ones, training objects as neighbours for explanations."""
    clf = ProtoNetClassifier(
        arch=arch,
        state_dict=state_dict,
        class_names=list(data.class_names),
        prototypes=np.zeros((len(data.class_names), arch.out_dim), dtype=np.float32),
        feat_mean=feat_mean,
        feat_std=feat_std,
        calibration=np.zeros(1),
        ref_embeddings=np.zeros((0, arch.out_dim), dtype=np.float32),
        ref_ids=np.asarray([], dtype=str),
        ref_labels=np.asarray([], dtype=str),
        max_len=max_len,
        meta=meta or {},
    )
    tr, va = data.train_idx, data.val_idx
    if data.context is not None:
        clf.context_mean, clf.context_std = data.context_mean, data.context_std
        block = fit_context_block(data.context[tr], data.labels[tr], arch.whiten_shrinkage)
        clf.context_cov = None if block is None else block.covariance
    # data.feats are already normalised: embed with identity normalisation
    enc_ctx = None
    if arch.context_fields:
        cols = [FEATURE_FIELDS.index(f) for f in arch.context_fields]
        ctx = data.context if data.context is not None else np.full((len(data.labels), len(FEATURE_FIELDS)), np.nan)
        enc_ctx = torch.from_numpy(encoder_inputs(ctx[:, cols]))
    with torch.no_grad():
        emb = clf._encoder(
            torch.from_numpy(data.seq), torch.from_numpy(data.length), torch.from_numpy(data.feats), context=enc_ctx
        ).numpy()  # (N, D)
    if clf.context_cov is not None and data.context is not None:
        emb = np.concatenate([emb, data.context.astype(np.float32)], axis=1)  # (N, D + len(FEATURE_FIELDS))
    n_classes = len(data.class_names)
    protos = np.stack([clf.prototype_of(emb[tr][data.labels[tr] == k]) for k in range(n_classes)])  # (K, D)
    clf.prototypes = protos.astype(np.float32)
    counts = data.class_counts if data.class_counts is not None else np.bincount(data.labels, minlength=n_classes)
    clf.prior_counts = np.maximum(np.asarray(counts, dtype=float), 1.0)
    if arch.tune_prior_weight:
        inner = np.concatenate([tr, va])
        d2 = clf.distances(emb[inner], clf.prototypes)  # (N, K)
        members = np.bincount(data.labels[tr], minlength=n_classes)
        d2[: len(tr)] = leave_one_out(d2[: len(tr)], data.labels[tr], members)  # training objects: leave-one-out
        clf.tuned_prior_weight, scores = tune_prior_weight(d2, data.labels[inner], clf.counts())
        clf.meta = {**clf.meta, "prior_weight_scores": scores}
    held_out = va if len(va) else tr
    clf.calibration = np.sort(clf.novelty(emb[held_out]))
    refs = tr[:max_refs]
    clf.ref_embeddings = emb[refs].astype(np.float32)
    clf.ref_ids = np.asarray(data.object_id[refs], dtype=str)
    clf.ref_labels = np.asarray([data.class_names[k] for k in data.labels[refs]], dtype=str)
    return clf
