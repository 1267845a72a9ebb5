"""The main job, end to end on a local Ray cluster (``cosmic-ray demo`` / ``make demo``)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import fastavro
import httpx

from cosmic_ray.core.config import Settings, load_train_config
from cosmic_ray.ops import cluster, pipeline
from cosmic_ray.ops import deploy as serving

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """What the demo did and where to look: its JSON line and the summary printed to the terminal."""

    simulated: bool
    ingest: list[dict[str, Any]]
    train: dict[str, Any]
    app_url: str
    dashboard_url: str
    mlflow_ui: str
    example_prediction: dict[str, Any]
    seconds: float
    sample: bool = False  # trained on the real sample shipped with the package (no shared data here)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        data = "real ZTF alerts + BTS light curves"
        if self.simulated:
            data = "SIMULATED data (no ../shared/data found)"
        elif self.sample:
            data = "the real sample shipped with cosmic_ray (no ../shared/data found; a small demonstration model)"
        p = self.example_prediction
        return "\n".join(
            [
                "",
                f"cosmic_ray demo finished in {self.seconds:.0f} s on {data}",
                f"  model        {self.train['model_name']} v{self.train['version']} "
                f"(balanced accuracy {self.train['metrics']['balanced_accuracy']:.2f}, chance {self.train['metrics']['chance_accuracy']:.2f}; "
                f"gate: {self.train['gate']['reason']})",
                f"  example      {p.get('object_id')} -> {p.get('class')} (open-set score {p.get('open_set_score', 0):.2f})",
                f"  Ray dashboard  {self.dashboard_url}",
                f"  API docs       {self.app_url}/docs",
                f"  MLflow UI      {self.mlflow_ui}",
                "  stop it all    cosmic-ray cluster down",
                "",
            ]
        )


def example_alert(inputs_alerts: list[Path]) -> dict[str, Any]:
    """The first readable alert of the inputs, as the JSON the API takes (cutouts dropped)."""
    for folder in inputs_alerts:
        for path in sorted(Path(folder).rglob("*.avro")):
            try:
                with open(path, "rb") as handle:
                    record = next(iter(fastavro.reader(handle)))
            except Exception:  # a bad file is quarantined by ingest; just pick another
                continue
            if isinstance(record, dict) and "candidate" in record:
                return {k: v for k, v in record.items() if not k.startswith("cutout")}
    raise FileNotFoundError("no readable alert among the inputs")


def run(settings: Settings, train_config: Path, serve_config: Path) -> DemoResult:
    """Cluster -> ingest -> train -> register -> serve (declarative, as ``serve up``) -> one prediction."""
    start = time.perf_counter()
    cluster.connect(settings)
    inputs = pipeline.default_inputs(settings)
    summaries = pipeline.ingest_defaults(settings, inputs)
    report = pipeline.train_from_lake(settings, load_train_config(train_config))
    # a running API follows the registry and picks the new production model up by itself; apply()
    # changes nothing then, and applies an edited serve config
    serving.apply(settings, serve_config)
    alert = example_alert(inputs.alerts)
    answer = httpx.post(f"{settings.app_url}/predict", json={"alert": alert}, timeout=60)
    answer.raise_for_status()
    return DemoResult(
        simulated=inputs.simulated,
        ingest=[s.to_dict() for s in summaries],
        train={k: v for k, v in report.to_dict().items() if k != "history"},
        app_url=settings.app_url,
        dashboard_url=settings.dashboard_url,
        mlflow_ui=f"mlflow ui --backend-store-uri {settings.tracking_uri} --host 127.0.0.1 --port 5000",
        example_prediction=answer.json(),
        seconds=time.perf_counter() - start,
        sample=inputs.sample,
    )
