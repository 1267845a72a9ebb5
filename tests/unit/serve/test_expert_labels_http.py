"""Expert feedback over real HTTP with the Python client, without Ray: the served FastAPI app on
uvicorn, a real SQLite event store, a lake of real ZTF alerts (the Pitt-Google test packets).

- ``POST /objects/{id}/labels`` (astronomer/admin) and ``GET /objects/{id}/labels``: who and when
  kept, usernames hidden from anonymous readers, 401/403/422 with the server's message;
- ``GET /candidates/anomalous``: the night's objects ranked; an expert's "bogus" moves an object
  down, "interesting" moves it up;
- the client's alerts, candidates and light curve calls on the same app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cosmic_ray.client import AuthError, Client, ValidationError
from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.app import api
from cosmic_ray.serve.store import Store
from cosmic_ray.sources import ztf

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from api_context import configured
except ImportError:  # tests/ made a package
    from tests.api_context import configured

pytestmark = pytest.mark.timeout(180)
PASSWORD = "expert labels test passphrase 4711"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, shared_data):
    """``(base_url, tokens, night)``: the app over a fresh store and a lake of real alerts."""
    home = tmp_path_factory.mktemp("labels")
    settings = Settings(home=home)
    lake = Lake(settings.lake_dir)
    for path in sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro")):
        lake.append(ztf.parse(ztf.RawInput(str(path), path.read_bytes())).table)
    night = max(p.parent.name.split("=", 1)[1] for p in lake.files())
    store = Store.open(settings.event_store_url)
    tokens = {}
    for role in ("viewer", "astronomer"):
        store.accounts.add_user(role, PASSWORD, role=role)
        tokens[role] = store.accounts.create_token(role, "tests").token
    store.events.record_classifications(
        [
            {
                "candid": 7,
                "object_id": "ZTF18aaqzpsv",
                "class": "SLSN-I",
                "probabilities": {"SLSN-I": 0.7, "SN Ia": 0.3},
                "open_set_score": 0.2,
                "novel": False,
                "rare": True,
                "model_version": "1",
            }
        ]
    )
    with configured(settings, store, logins=50), serve_app(api) as url:
        yield url, tokens, night, home
    store.close()


def test_an_astronomer_labels_an_object_and_readers_see_it(app_url):
    url, tokens, _, _ = app_url
    with Client(url, token=tokens["astronomer"]) as astronomer, Client(url) as anonymous:
        first = astronomer.add_label("ZTF21abcdefg", "class", class_="SLSN-I", note="spectrum: SLSN-I at z=0.2")
        assert first["class"] == "SLSN-I" and first["user"] == "astronomer" and first["created_at"].endswith("Z")
        astronomer.add_label("ZTF21abcdefg", "interesting")
        astronomer.add_label("ZTF21abcdefg", "class", class_="SN Ia-91T")  # a fine spelling of a known class
        seen = astronomer.labels("ZTF21abcdefg")
        assert [(x["kind"], x["class"]) for x in seen] == [
            ("class", "SLSN-I"),
            ("interesting", None),
            ("class", "SN Ia-91T"),
        ]
        assert seen[0]["note"] == "spectrum: SLSN-I at z=0.2" and {x["user"] for x in seen} == {"astronomer"}
        public = anonymous.labels("ZTF21abcdefg")
        assert len(public) == 3 and {x["user"] for x in public} == {None}  # usernames not given away
        assert anonymous.labels("ZTFnothing") == []


def test_labels_refuse_the_wrong_caller_and_bad_answers_with_a_message(app_url):
    url, tokens, _, _ = app_url
    with Client(url, token=tokens["viewer"]) as viewer, Client(url) as anonymous:
        with pytest.raises(AuthError) as refused:
            viewer.add_label("ZTF21abcdefh", "bogus")
        assert refused.value.status == 403 and "astronomer" in str(refused.value)
        with pytest.raises(AuthError) as anon:
            anonymous.add_label("ZTF21abcdefh", "bogus")
        assert anon.value.status == 401
    with Client(url, token=tokens["astronomer"]) as astronomer:
        bad = [
            ({"kind": "class", "class_": "Kilonova-ish"}, "unknown class"),
            ({"kind": "class"}, "needs 'class'"),
            ({"kind": "bogus", "class_": "SN Ia"}, "takes no 'class'"),
            ({"kind": "maybe"}, "kind"),
            ({"kind": "interesting", "note": "x" * 2001}, "note"),
            ({"kind": "interesting", "note": "a\x00b"}, "NUL"),
        ]
        for args, words in bad:
            with pytest.raises(ValidationError) as err:
                astronomer.add_label("ZTF21abcdefh", **args)
            assert err.value.status == 422 and words in str(err.value), (args, str(err.value))
        assert astronomer.labels("ZTF21abcdefh") == []  # nothing stored by a refused answer


def test_the_anomaly_ranking_of_a_night_follows_the_experts(app_url):
    url, tokens, night, _ = app_url
    with Client(url, token=tokens["astronomer"]) as api_:
        before = api_.anomalous(night, top=1000)
        plain = api_.anomalous(night, top=1000, method="iforest")  # no feedback: the baseline
        ids = [o["object_id"] for o in before["top"]]
        assert before["objects_ranked"] == len(ids) >= 10 and before["answers_used"] == 0
        assert [o["rank"] for o in before["top"]] == list(range(1, len(ids) + 1))
        scores = [o["score"] for o in before["top"]]
        assert scores == sorted(scores, reverse=True)
        top, bottom = ids[0], ids[-1]
        api_.add_label(top, "bogus", note="a ghost")
        api_.add_label(bottom, "interesting")
        after = api_.anomalous(night, top=1000)
        ranks = {o["object_id"]: o["rank"] for o in after["top"]}
        assert after["answers_used"] == 2
        assert ranks[top] > 1 and ranks[bottom] < len(ids), (ranks[top], ranks[bottom])
        shown = {o["object_id"]: o["label"] for o in after["top"]}
        assert shown[top] == "bogus" and shown[bottom] == "interesting"
        again = api_.anomalous(night, top=1000, method="iforest")["top"]  # answers change nothing
        assert [(o["object_id"], o["score"]) for o in again] == [(o["object_id"], o["score"]) for o in plain["top"]]
        with pytest.raises(ValidationError):
            api_.anomalous("2021-09-01")


def test_the_client_reads_alerts_candidates_and_a_light_curve(app_url):
    url, _, _, _ = app_url
    with Client(url) as anonymous:
        (alert,) = [a for a in anonymous.alerts(rare=True) if a["candid"] == 7]
        assert alert["class"] == "SLSN-I" and alert["probabilities"]["SLSN-I"] == 0.7
        assert [c["object_id"] for c in anonymous.candidates("SLSN-I")] == ["ZTF18aaqzpsv"]
        rows = anonymous.lightcurve("ZTF18aaqzpsv", as_="rows")
        assert rows and all(r["object_id"] == "ZTF18aaqzpsv" for r in rows)
        assert [r["mjd"] for r in rows] == sorted(r["mjd"] for r in rows)
        table = anonymous.lightcurve("ZTF18aaqzpsv", as_="astropy")
        assert len(table) == len(rows) and str(table["mjd"].unit) == "d"
        frame = anonymous.lightcurve("ZTF18aaqzpsv", as_="pandas")
        assert list(frame["mag"]) == [r["mag"] for r in rows]


def test_the_anomalies_command_ranks_the_night_with_the_stored_answers(app_url):
    url, tokens, night, home = app_url
    with Client(url, token=tokens["astronomer"]) as api_:
        served = api_.anomalous(night, top=5)
    env = {**os.environ, "COSMIC_RAY_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.ops.cli", "anomalies", "--night", night, "--top", "5"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    printed = json.loads(out.stdout.strip().splitlines()[-1])
    assert printed["night"] == night and printed["answers_used"] == served["answers_used"]
    assert [o["object_id"] for o in printed["top"]] == [o["object_id"] for o in served["top"]]
    bad = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.ops.cli", "anomalies", "--night", "2021-09-01"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert bad.returncode != 0 and "YYYYMMDD" in bad.stderr
