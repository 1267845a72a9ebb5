"""Read routes on the served app: /alerts filters, similar objects, /metrics, /healthz, /model, 422s."""

from __future__ import annotations

import re

import httpx

BASE = 1_000  # candids of this file's rows (real ZTF candids are ~1e18)


def test_alerts_route_filters_by_class_rarity_and_time(served, event_store):
    rows = [
        {
            "candid": BASE + i,
            "object_id": f"ZTFroute{i}",
            "class": label,
            "probabilities": {label: 0.8, "SN Ia": 0.2},
            "open_set_score": 0.5,
            "novel": False,
            "rare": rare,
            "model_version": "1",
        }
        for i, (label, rare) in enumerate([("TDE", True), ("SN II", False), ("SLSN-I", True)])
    ]
    assert len(event_store.events.record_classifications(rows)) == 3
    every = httpx.get(f"{served}/alerts", params={"limit": 1000}, timeout=30).json()
    mine = [a for a in every if BASE <= a["candid"] < BASE + 10]
    assert [a["candid"] for a in mine] == [BASE + 2, BASE + 1, BASE]  # newest first
    rare = httpx.get(f"{served}/alerts", params={"rare": "true", "limit": 1000}, timeout=30).json()
    assert {a["candid"] for a in rare if BASE <= a["candid"] < BASE + 10} == {BASE, BASE + 2} and all(
        a["rare"] for a in rare
    )
    tde = httpx.get(f"{served}/alerts", params={"class": "TDE"}, timeout=30).json()
    assert {a["candid"] for a in tde if BASE <= a["candid"] < BASE + 10} == {BASE} and all(
        a["class"] == "TDE" for a in tde
    )
    assert httpx.get(f"{served}/alerts", params={"since": "2999-01-01T00:00:00Z"}, timeout=30).json() == []
    assert httpx.get(f"{served}/alerts", params={"limit": 0}, timeout=30).status_code == 422
    assert httpx.get(f"{served}/alerts", params={"since": "yesterday-ish"}, timeout=30).status_code == 422


def test_candidates_route_ranks_objects_by_one_class_probability(served, event_store):
    cls = "SLSN-Itest"  # a class only this test's rows name: other tests' alerts do not rank
    rows = [
        {
            "candid": BASE + 100 + i,
            "object_id": obj,
            "class": "SN Ia",
            "probabilities": {"SN Ia": 1 - p, cls: p},
            "open_set_score": 0.4,
            "novel": False,
            "rare": False,
            "model_version": "1",
        }
        for i, (obj, p) in enumerate([("ZTFcandA", 0.2), ("ZTFcandB", 0.9), ("ZTFcandA", 0.6), ("ZTFcandC", 0.4)])
    ]
    assert len(event_store.events.record_classifications(rows)) == 4
    answer = httpx.get(f"{served}/candidates", params={"class": cls, "limit": 10}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert [(a["object_id"], a["probabilities"][cls]) for a in answer.json()] == [
        ("ZTFcandB", 0.9),
        ("ZTFcandA", 0.6),
        ("ZTFcandC", 0.4),
    ]
    assert len(httpx.get(f"{served}/candidates", params={"class": cls, "limit": 1}, timeout=30).json()) == 1
    assert (
        httpx.get(f"{served}/candidates", params={"class": cls, "since": "2999-01-01T00:00:00Z"}, timeout=30).json()
        == []
    )
    missing = httpx.get(f"{served}/candidates", timeout=30)
    assert missing.status_code == 422 and "class" in missing.text


def test_similar_objects_over_the_lake(served, trained, settings):
    from cosmic_ray.ingest.lake import Lake

    ids = Lake(settings.lake_dir).read(sources=["catalog"]).column("object_id").unique().to_pylist()
    target = ids[0]
    answer = httpx.get(f"{served}/objects/{target}/similar", params={"k": 7}, timeout=120)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object_id"] == target and body["model_version"] == trained.version
    near = body["neighbours"]
    assert len(near) == 7 and target not in {n["object_id"] for n in near}
    assert [n["distance"] for n in near] == sorted(n["distance"] for n in near)
    assert set(n["object_id"] for n in near) <= set(ids) | set(
        Lake(settings.lake_dir).read(sources=["ztf_alert"]).column("object_id").to_pylist()
    )
    assert httpx.get(f"{served}/objects/ZTF00nothere/similar", timeout=60).status_code == 404
    assert httpx.get(f"{served}/objects/{target}/similar", params={"k": 0}, timeout=60).status_code == 422


def test_metrics_health_and_model(served, trained):
    lc = {
        "object_id": "m",
        "points": [{"mjd": 59000.0 + i, "band": "g", "mag": 19.0, "magerr": 0.05} for i in range(4)],
    }
    assert httpx.post(f"{served}/predict", json={"lightcurve": lc}, timeout=60).status_code == 200
    assert httpx.get(f"{served}/healthz", timeout=30).json() == {"status": "ok", "model_version": trained.version}
    info = httpx.get(f"{served}/model", timeout=30).json()
    assert info["version"] == trained.version and info["last_reload_error"] is None and info["replica"]
    text = httpx.get(f"{served}/metrics", timeout=30).text
    assert 'cosmic_ray_http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert 'cosmic_ray_http_request_seconds_bucket{le="0.1",route="/predict"}' in text
    assert f"cosmic_ray_model_version {float(trained.version)}" in text
    assert "cosmic_ray_rare_events " in text and "cosmic_ray_predictions_total" in text
    calls = re.search(r"^cosmic_ray_coalesced_batch_size_count (\S+)$", text, re.M)
    assert calls and float(calls.group(1)) >= 1  # the /predict above went to the model through the coalescer
    spec = httpx.get(f"{served}/openapi.json", timeout=30).json()
    assert {
        "/alerts",
        "/classes",
        "/classes/{name}",
        "/objects/{object_id}/similar",
        "/auth/login",
        "/auth/logout",
        "/auth/me",
        "/model/reload",
    } <= set(spec["paths"])


def test_concurrent_single_predictions_each_get_their_own_answer(served, trained):
    """Concurrent /predict calls are coalesced into one model call and split again: each caller
    gets the answer for its own light curve, the same as /predict/batch gives for it."""
    from concurrent.futures import ThreadPoolExecutor

    curves = [
        {
            "object_id": f"coalesce{i}",
            "points": [
                {"mjd": 59000.0 + 3 * k, "band": "gr"[k % 2], "mag": 20.0 - (0.05 + 0.04 * i) * k, "magerr": 0.05}
                for k in range(5 + i % 7)
            ],
        }
        for i in range(24)
    ]
    batch = httpx.post(f"{served}/predict/batch", json={"items": [{"lightcurve": c} for c in curves]}, timeout=120)
    assert batch.status_code == 200, batch.text
    expected = {r["object_id"]: r for r in batch.json()["results"]}
    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=24)) as client, ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda c: client.post(f"{served}/predict", json={"lightcurve": c}), curves * 2))
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers if a.status_code != 200][
        :3
    ]
    for curve, answer in zip(curves * 2, answers, strict=False):
        body = answer.json()
        assert body["object_id"] == curve["object_id"]
        want = expected[curve["object_id"]]
        assert body["class"] == want["class"]
        assert all(abs(body["probabilities"][k] - v) < 1e-4 for k, v in want["probabilities"].items())
        assert [n["object_id"] for n in body["neighbours"]] == [n["object_id"] for n in want["neighbours"]]
    assert (
        len({a.json()["open_set_score"] for a in answers}) > 1
    )  # distinct curves, distinct answers: no mix-up hidden by sameness
