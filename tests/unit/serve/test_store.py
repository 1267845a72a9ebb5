"""The event store on a real SQLite file: exactly-once classifications, classes, users, tokens, sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cosmic_ray.serve.db import ConflictError, NotFoundError, StoreError, utcnow
from cosmic_ray.serve.store import Store


@pytest.fixture()
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'events.db'}")
    yield s
    s.close()


def _row(candid: int, label: str = "SN Ia", rare: bool = False) -> dict:
    return {
        "candid": candid,
        "object_id": f"ZTF{candid}",
        "class": label,
        "probabilities": {label: 0.9, "other": 0.1},
        "open_set_score": 0.2,
        "novel": False,
        "rare": rare,
        "model_version": "3",
    }


def test_classifications_are_stored_exactly_once_per_candid(store, tmp_path):
    assert sorted(
        store.events.record_classifications([_row(1), _row(2, "TDE", rare=True), _row(2, "TDE", rare=True)])
    ) == [
        1,
        2,
    ]
    assert store.events.record_classifications([_row(2), _row(3)]) == [3]
    other = Store.open(f"sqlite:///{tmp_path / 'events.db'}").events  # another process's view of the same file
    assert other.record_classifications([_row(1), _row(3)]) == []
    assert store.events.count_classifications() == 3 and store.events.count_classifications(rare=True) == 1
    assert store.events.known_candids([1, 2, 99]) == {1, 2}
    rare = store.events.recent_alerts(rare=True)
    assert [r["candid"] for r in rare] == [2] and rare[0]["class"] == "TDE" and rare[0]["probabilities"]["TDE"] == 0.9
    assert {r["candid"] for r in store.events.recent_alerts(label="SN Ia")} == {1, 3}
    assert store.events.recent_alerts(limit=1)[0]["candid"] == 3  # newest first
    assert store.events.recent_alerts(since=utcnow() + timedelta(minutes=1)) == []


def test_top_candidates_rank_objects_by_a_class_probability_once_each(store):
    def row(candid: int, obj: str, p_slsn: float | None) -> dict:
        probs = {"SN Ia": 1.0 - (p_slsn or 0.0)} | ({} if p_slsn is None else {"SLSN-I": p_slsn})
        return {
            "candid": candid,
            "object_id": obj,
            "class": "SN Ia",
            "probabilities": probs,
            "open_set_score": 0.3,
            "novel": False,
            "rare": False,
            "model_version": "4",
        }

    store.events.record_classifications(
        [
            row(1, "ZTFa", 0.10),
            row(2, "ZTFb", 0.70),
            row(3, "ZTFa", 0.55),  # ZTFa twice: its best alert counts
            row(4, "ZTFc", 0.20),
            row(5, "ZTFd", None),
        ]
    )  # ZTFd: a model that did not know SLSN-I
    top = store.events.top_candidates("SLSN-I")
    assert [(r["object_id"], r["candid"]) for r in top] == [("ZTFb", 2), ("ZTFa", 3), ("ZTFc", 4)]
    assert [r["object_id"] for r in store.events.top_candidates("SLSN-I", limit=2)] == ["ZTFb", "ZTFa"]
    assert store.events.top_candidates("SN Ibn/Icn") == []  # no alert names that class
    assert [r["object_id"] for r in store.events.top_candidates("SN Ia", limit=1)] == ["ZTFd"]
    assert store.events.top_candidates("SLSN-I", since=utcnow() + timedelta(minutes=1)) == []


def test_registered_classes_bump_the_version_and_persist(store, tmp_path):
    assert store.events.classes_version() == 0
    support = [{"object_id": "a", "points": [{"mjd": 1.0, "band": "g", "mag": 19.0, "magerr": 0.1}]}]
    store.events.add_class("Weird", support, created_by="vera")
    v1 = store.events.classes_version()
    assert v1 > 0
    with pytest.raises(ConflictError):
        store.events.add_class("Weird", support, created_by="vera")
    with pytest.raises(StoreError):
        store.events.add_class("bad\nname", support, created_by="vera")
    reopened = Store.open(f"sqlite:///{tmp_path / 'events.db'}").events
    version, classes = reopened.classes_snapshot()
    assert version == v1 and [c.name for c in classes] == ["Weird"] and classes[0].support == support
    reopened.remove_class("Weird")
    assert store.events.classes_version() > v1 and store.events.list_classes() == []
    with pytest.raises(NotFoundError):
        store.events.remove_class("Weird")


def test_passwords_are_hashed_with_argon2_and_checked(store):
    store.accounts.add_user("vera", "correct horse battery", role="astronomer")
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("select password_hash from users where username='vera'").scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert store.accounts.authenticate("vera", "correct horse battery").role == "astronomer"
    assert store.accounts.authenticate("vera", "wrong password!") is None
    assert store.accounts.authenticate("nobody", "correct horse battery") is None
    with pytest.raises(StoreError):
        store.accounts.add_user("short", "tooshort", role="viewer")
    with pytest.raises(StoreError):
        store.accounts.add_user("boss", "long enough password", role="emperor")
    with pytest.raises(ConflictError):
        store.accounts.add_user("vera", "another long password")
    store.accounts.set_password("vera", "a brand new passphrase")
    assert store.accounts.authenticate("vera", "correct horse battery") is None
    assert store.accounts.authenticate("vera", "a brand new passphrase") is not None


def test_tokens_and_sessions(store):
    store.accounts.add_user("ci", "a long ci password", role="viewer")
    token = store.accounts.create_token("ci", "nightly")
    assert token.token.startswith("crt_")
    assert store.accounts.principal_for_token(token.token).username == "ci"
    assert store.accounts.principal_for_token(token.token + "x") is None
    with store.engine.connect() as conn:
        hashes = conn.exec_driver_sql("select token_hash from api_tokens").scalars().all()
    assert token.token not in hashes
    store.accounts.revoke_token(token.id)
    assert store.accounts.principal_for_token(token.token) is None
    with pytest.raises(NotFoundError):
        store.accounts.revoke_token(token.id)
    sid, _ = store.accounts.create_session("ci", timedelta(hours=1))
    assert store.accounts.principal_for_session(sid).role == "viewer"
    expired, _ = store.accounts.create_session("ci", timedelta(seconds=-1))
    assert store.accounts.principal_for_session(expired) is None
    store.accounts.delete_session(sid)
    assert store.accounts.principal_for_session(sid) is None
    sid2, _ = store.accounts.create_session("ci", timedelta(hours=1))
    token2 = store.accounts.create_token("ci")
    store.accounts.remove_user("ci")
    assert (
        store.accounts.principal_for_session(sid2) is None and store.accounts.principal_for_token(token2.token) is None
    )
    with pytest.raises(NotFoundError):
        store.accounts.create_token("ci")


def test_events_and_accounts_share_one_engine_and_file(store, tmp_path):
    assert store.events.engine is store.accounts.engine is store.engine
    store.accounts.add_user("eve", "a long enough password", role="admin")
    store.events.record_classifications([_row(7)])
    again = Store.open(store.url)  # another process's view: both halves in the same file
    assert again.accounts.get_user("eve").role == "admin" and again.events.known_candids([7]) == {7}
    again.close()
