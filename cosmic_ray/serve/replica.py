"""The model replica: the ``ProtoNetModel`` Serve deployment that classifies light curves in batches.

Each replica holds the registry's ``production`` model plus a prototype per class registered in
the event store, as one :class:`ServedModel` swapped atomically. It follows both by polling, so
every replica agrees within ``class_poll_seconds`` / ``model_poll_seconds`` without a change to
the Serve config.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ray import serve

from cosmic_ray.core.context import masked
from cosmic_ray.learn.bands import bands_used
from cosmic_ray.learn.features import featurize_objects
from cosmic_ray.serve.args import AppArgs
from cosmic_ray.serve.items import ModelItem, points_to_rows
from cosmic_ray.serve.loopback import bind_replica_grpc_to_loopback
from cosmic_ray.serve.schemas import ModelInfo
from cosmic_ray.serve.similarity import LakeIndex, SimilarityIndex
from cosmic_ray.serve.store import Store

if TYPE_CHECKING:
    from cosmic_ray.learn.classifier import ProtoNetClassifier
    from cosmic_ray.learn.registry import RegisteredModel

log = logging.getLogger(__name__)

#: The model deployment's name (``deployments:`` of configs/serve.yaml, ``get_deployment_handle``).
MODEL_DEPLOYMENT = "ProtoNetModel"


@dataclass(frozen=True)
class ServedModel:
    """What a replica serves, replaced as a whole (never changed in place).

    Attributes:
        base: the registered model's classifier, without the runtime classes.
        classifier: ``base`` with a prototype per registered class.
        registered: the registry's record of the model version.
        classes_version: the event store's classes version the prototypes were built from.
        registered_classes: names of the runtime classes in ``classifier``.
    """

    base: ProtoNetClassifier
    classifier: ProtoNetClassifier
    registered: RegisteredModel
    classes_version: int
    registered_classes: tuple[str, ...]


def _count_items(calls: list[list[Any]]) -> int:
    """Batch size of a list of calls that each carry a list of items: the number of items."""
    return sum(len(call) for call in calls)


@serve.deployment(name=MODEL_DEPLOYMENT, max_ongoing_requests=128)
class ProtoNetModel:
    """Holds the production classifier plus the registered classes; batches light curves.

    Follows the registry's alias (new versions load beside the old one and replace it in one
    assignment) and the event store's class table (prototypes recomputed with the current encoder).
    """

    def __init__(self, args: dict[str, Any]):
        from cosmic_ray.learn import registry  # deferred: mlflow is heavy

        bind_replica_grpc_to_loopback()  # before Serve starts this replica's gRPC server
        self.args = AppArgs.model_validate(args)
        self.settings = self.args.settings()
        self._registry = registry
        self.store = Store.open(self.settings.event_store_url).events
        self._rebuild = threading.Lock()
        classifier, registered = registry.load_model(self.settings)
        classifier.novelty_threshold = self.args.novelty_threshold
        self._current = self._with_registered_classes(classifier, registered)
        self.last_reload_error: str | None = None
        self.last_class_error: str | None = None
        self._similar = SimilarityIndex(self.settings.lake_dir)
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside Serve (plain construction in a benchmark)
            self.replica = "local"
        self._stop = threading.Event()
        threading.Thread(target=self._follow, daemon=True, name="model-and-class-poller").start()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """``user_config`` of configs/serve.yaml: batch size (light curves), wait timeout, torch threads."""
        self.predict.set_max_batch_size(int(user_config.get("max_batch_size", 64)))  # type: ignore[attr-defined]
        self.predict.set_batch_wait_timeout_s(float(user_config.get("batch_wait_timeout_s", 0.0)))  # type: ignore[attr-defined]
        if "torch_threads" in user_config:
            import torch  # deferred: torch is heavy

            torch.set_num_threads(int(user_config["torch_threads"]))

    # ------------------------------------------------------------ following the registry and the store
    def _follow(self) -> None:
        next_model = time.monotonic() + self.args.model_poll_seconds
        while not self._stop.wait(self.args.class_poll_seconds):
            self.sync_classes()
            if time.monotonic() >= next_model:
                self.check_for_new_model()
                next_model = time.monotonic() + self.args.model_poll_seconds

    def _with_registered_classes(self, base: ProtoNetClassifier, registered: RegisteredModel) -> ServedModel:
        """``base`` and a copy of it with a prototype per registered class (embedded by ``base``'s encoder)."""
        version, records = self.store.classes_snapshot()
        clf = base
        names: list[str] = []
        for record in records:
            if record.name in base.class_names:
                log.warning("registered class %r has the name of a trained class: ignored", record.name)
                continue
            arrays = featurize_objects(
                [points_to_rows(f"s{i}", s["points"]) for i, s in enumerate(record.support)], clf.max_len
            )
            if len(arrays["seq"]) == 0:
                log.warning("registered class %r has no usable support light curve: ignored", record.name)
                continue
            clf = clf.with_class(record.name, arrays["seq"], arrays["length"], arrays["feats"])  # a copy
            names.append(record.name)
        return ServedModel(base, clf, registered, version, tuple(names))

    def sync_classes(self) -> int:
        """Rebuild the prototypes if the store's classes changed; returns the classes version served."""
        try:
            if self.store.classes_version() != self._current.classes_version:
                with self._rebuild:
                    current = self._current
                    self._current = self._with_registered_classes(current.base, current.registered)
                    log.info(
                        "classes version %d: registered %s",
                        self._current.classes_version,
                        list(self._current.registered_classes),
                    )
            self.last_class_error = None
        except Exception as exc:  # keep serving the classes we have
            self.last_class_error = f"{type(exc).__name__}: {exc}"
            log.warning("could not refresh the registered classes: %s", exc)
        return self._current.classes_version

    def check_for_new_model(self) -> str:
        """Load the production version beside the current one and switch if it changed."""
        serving = self._current.registered.version
        latest = None
        try:
            latest = self._registry.production_version(self.settings)
            if latest is None or latest.version == serving:
                if latest is not None:  # production names what is served: no failed switch is pending
                    self.last_reload_error = None
                return serving
            classifier, registered = self._registry.load_model(self.settings, latest.version)
            classifier.novelty_threshold = self.args.novelty_threshold
            with self._rebuild:
                self._current = self._with_registered_classes(classifier, registered)
                self._similar.invalidate()
            self.last_reload_error = None
            log.info("now serving %s version %s", registered.name, registered.version)
        except Exception as exc:  # a bad version leaves the old one serving
            self.last_reload_error = f"version {latest.version if latest else '?'}: {type(exc).__name__}: {exc}"
            log.warning("model reload failed, keeping version %s: %s", serving, exc)
        return self._current.registered.version

    def info(self) -> dict[str, Any]:
        current = self._current
        return ModelInfo(
            name=current.registered.name,
            version=current.registered.version,
            run_id=current.registered.run_id,
            classes=current.classifier.class_names,
            trained_at=current.classifier.meta.get("trained_at"),
            meta=current.classifier.meta,
            last_reload_error=self.last_reload_error,
            registered_classes=list(current.registered_classes),
            classes_version=current.classes_version,
            replica=self.replica,
        ).model_dump()

    # ------------------------------------------------------------ classification
    def _classify(self, items: list[ModelItem]) -> list[dict[str, Any]]:
        """Each item -> a prediction dict (or ``{"error": ...}``); one featurize + forward for all."""
        current = self._current
        classifier = current.classifier
        arrays = featurize_objects([item.rows for item in items], classifier.max_len)  # object_id: the item's index
        mode = self.settings.context_mode
        shown = [masked(item.context, mode) for item in items]  # the context fields the mode lets the model see
        context = [shown[int(i)] for i in arrays["object_id"]]  # one per featurized row
        preds = {
            p.object_id: p
            for p in classifier.predict_features(arrays, neighbours=self.args.neighbours, contexts=context, mode=mode)
        }
        out: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            p = preds.get(str(i))
            if p is None:
                out.append({"error": "no usable detection in the light curve"})
                continue
            out.append(
                {
                    "object_id": item.object_id,
                    "class": p.label,
                    "probabilities": p.probabilities,
                    "open_set_score": p.open_set_score,
                    "novel": p.novel,
                    "rare": p.label in self.args.rare_classes,
                    "neighbours": p.neighbours,
                    "model_version": current.registered.version,
                    "bands_used": bands_used(item.rows),
                    **({"candid": item.candid} if item.candid is not None else {}),
                    **({"context": shown[i], "context_mode": mode} if item.context is not None else {}),
                }
            )
        return out

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0, batch_size_fn=_count_items)
    async def predict(self, calls: list[list[ModelItem]]) -> list[list[dict[str, Any]]]:
        """A list of items per call (one request, or an ingress's coalesced requests); Serve
        gathers concurrent calls up to ``max_batch_size`` light curves into one featurize + forward."""
        results = self._classify([item for call in calls for item in call])
        out, start = [], 0
        for call in calls:
            out.append(results[start : start + len(call)])
            start += len(call)
        return out

    def predict_many(self, items: list[ModelItem]) -> list[dict[str, Any]]:
        """A whole list in one call (``/predict/batch`` chunks and the live path)."""
        return self._classify(items)

    # ------------------------------------------------------------ similarity
    def _index(self, classifier: ProtoNetClassifier, version: str) -> LakeIndex:
        """Embeddings of every lake object with a usable light curve, per model version (built once, under a
        lock; a landed file re-embeds only its objects); the classifier's reference objects when the lake is empty."""

        def embed(arrays: dict[str, Any]) -> np.ndarray:
            return classifier.embed(arrays["seq"], arrays["length"], arrays["feats"])  # (N, D)

        index = self._similar.get(version, classifier.max_len, embed)
        if len(index.ids) == 0:  # no lake here: the classifier's reference objects
            return LakeIndex(
                version,
                index.files,
                classifier.ref_ids.astype(str),
                classifier.ref_labels.astype(str),
                classifier.ref_embeddings,
            )
        return index

    def similar(self, object_id: str, k: int = 10) -> dict[str, Any] | None:
        """The ``k`` nearest lake objects to ``object_id`` in embedding space; None if it is unknown."""
        current = self._current
        classifier = current.classifier
        index = self._index(classifier, current.registered.version)
        ids, labels, emb = index.ids, index.labels, index.embeddings
        where = np.flatnonzero(ids == object_id)
        if len(where):
            query = emb[where[0]]
        else:
            ref = np.flatnonzero(classifier.ref_ids.astype(str) == object_id)
            if not len(ref):
                return None
            query = classifier.ref_embeddings[ref[0]]
        dist = np.sqrt(((emb - query[None, :]) ** 2).sum(axis=1))  # (N,)
        order = [j for j in np.argsort(dist) if ids[j] != object_id][:k]
        return {
            "object_id": object_id,
            "model_version": current.registered.version,
            "neighbours": [
                {"object_id": str(ids[j]), "label": str(labels[j]), "distance": float(dist[j])} for j in order
            ],
        }
