"""The Python client of the cosmic_ray API: typed calls, token auth, bounded retries on 429/503.

Example (against ``make demo``'s server; a token from ``cosmic-ray tokens create <user>``)::

    from cosmic_ray.client import Client

    with Client("http://127.0.0.1:8000", token=my_token) as api:
        page = api.cone_search(ra=194.05, dec=-5.53, radius=0.01)
        lc = api.lightcurve(page["objects"][0]["object_id"], as_="pandas")
        api.add_label("ZTF21abiuvdk", kind="class", class_="SN Ia", note="spectrum on TNS")
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

import httpx

from cosmic_ray.client.errors import ClientError
from cosmic_ray.client.tables import TableKind, convert, rows_from_csv, rows_from_json, table_from_votable
from cosmic_ray.client.transport import send
from cosmic_ray.client.types import AlertRecord, AnomalyRanking, Label, ObjectPage, Prediction, Watchlist

log = logging.getLogger(__name__)


def _path(object_id: str) -> str:
    return quote(object_id, safe="")


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; booleans as ``true``/``false``."""
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in values.items() if v is not None}


class Client:
    """A connection to one cosmic_ray API.

    Args:
        base_url: the API's root, e.g. ``http://127.0.0.1:8000``.
        token: an API token (``Authorization: Bearer``); reads work without one unless the server
            requires it, writes need an astronomer's or admin's.
        timeout: seconds per request.
        retries: extra attempts after a 429/503 answer (each after the server's ``Retry-After``).
        max_wait: the longest wait before a retry, whatever ``Retry-After`` says.
        transport: an httpx transport (tests, proxies); default: plain HTTP(S).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        if retries < 0 or max_wait < 0:
            raise ValueError("retries and max_wait must be >= 0")
        headers = {"Accept": "application/json", "User-Agent": "cosmic-ray-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.max_wait = max_wait
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call with the client's retries. Raises: ApiError: the server's refusal, with its message."""
        return send(self._http, method, path, retries=self.retries, max_wait=self.max_wait, **kwargs)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # ------------------------------------------------------------------ model
    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", "/healthz"))

    def model(self) -> dict[str, Any]:
        """The served model: name, version, classes."""
        return cast(dict[str, Any], self._json("GET", "/model"))

    @staticmethod
    def _predict_item(item: Mapping[str, Any], context: Mapping[str, Any] | None) -> dict[str, Any]:
        if "alert" in item or "lightcurve" in item:
            body = dict(item)
        elif "points" in item:
            body = {"lightcurve": dict(item)}
        elif "candidate" in item or "objectId" in item:
            body = {"alert": dict(item)}
        else:
            raise ClientError("give a light curve ({object_id, points}) or an alert ({objectId, candidate, ...})")
        if context is not None:
            body["context"] = dict(context)
        return body

    def predict(self, item: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> Prediction:
        """Classify one light curve (``{"object_id", "points": [{mjd, band, mag, magerr, is_limit}]}``) or
        one ZTF alert as JSON (the Avro record without cutouts); ``context``: the object's context, if
        the server takes one."""
        return cast(Prediction, self._json("POST", "/predict", json=self._predict_item(item, context)))

    def predict_batch(self, items: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Classify many (the server's limit applies: 413 beyond it); results in order."""
        body = {"items": [self._predict_item(i, None) for i in items]}
        return cast(list[Prediction], self._json("POST", "/predict/batch", json=body)["results"])

    # ------------------------------------------------------------------ objects
    def cone_search(
        self,
        ra: float,
        dec: float,
        radius: float,
        *,
        limit: int | None = None,
        offset: int | None = None,
        **filters: Any,
    ) -> ObjectPage:
        """Objects within ``radius`` degrees of (``ra``, ``dec``), nearest first.

        Args:
            filters: ``class_`` (or ``label``), ``min_probability``, ``min_open_set``, ``max_open_set``,
                ``last_after``, ``last_before`` (MJD), ``rare``.
        """
        if "class_" in filters or "label" in filters:
            filters["class"] = filters.pop("class_", None) or filters.pop("label", None)
        params = _params(ra=ra, dec=dec, radius=radius, limit=limit, offset=offset, **filters)
        return cast(ObjectPage, self._json("GET", "/objects", params=params))

    def object(self, object_id: str) -> dict[str, Any]:
        """The object's summary: position, detections, latest class, context, links."""
        return cast(dict[str, Any], self._json("GET", f"/objects/{_path(object_id)}"))

    def lightcurve(self, object_id: str, as_: TableKind = "astropy", format: str = "csv") -> Any:  # noqa: A002
        """The object's points in the lake (detections, upper limits, forced photometry), by time.

        Args:
            as_: ``astropy`` (a Table with units), ``pandas`` (a DataFrame) or ``rows`` (dicts).
            format: what to download: ``csv`` (default), ``votable`` (astropy only) or ``json``.
        """
        response = self.request("GET", f"/objects/{_path(object_id)}/lightcurve", params={"format": format})
        media = response.headers.get("content-type", "")
        if "json" in media:  # the JSON form (also what a server without downloads answers)
            rows = rows_from_json(response.json())
        elif "xml" in media:
            table = table_from_votable(response.content)
            return (
                table if as_ == "astropy" else convert([dict(zip(table.colnames, r, strict=True)) for r in table], as_)
            )
        else:
            rows = rows_from_csv(response.text)
        return convert(rows, as_)

    def similar(self, object_id: str, k: int = 10) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", f"/objects/{_path(object_id)}/similar", params={"k": k}))

    def cutouts(
        self,
        object_id: str,
        candid: int | None = None,
        kind: str | None = None,
        format: str = "png",  # noqa: A002
    ) -> bytes:
        """An alert's stamps: a PNG (the three side by side, or ``kind`` = science/template/difference alone)
        or ``format="fits"`` (one stamp: needs ``kind``). Default alert: the object's latest with stamps."""
        params = _params(candid=candid, kind=kind, format=format)
        return self.request("GET", f"/objects/{_path(object_id)}/cutouts", params=params).content

    # ------------------------------------------------------------------ live path
    def alerts(
        self, class_: str | None = None, rare: bool | None = None, since: str | None = None, limit: int = 100
    ) -> list[AlertRecord]:
        """Recent classified alerts, newest first (``since``: ISO 8601)."""
        params = _params(rare=rare, since=since, limit=limit, **{"class": class_})
        return cast(list[AlertRecord], self._json("GET", "/alerts", params=params))

    def candidates(self, label: str, since: str | None = None, limit: int = 50) -> list[AlertRecord]:
        """A follow-up list: objects ranked by their probability of ``label``, highest first."""
        params = _params(since=since, limit=limit, **{"class": label})
        return cast(list[AlertRecord], self._json("GET", "/candidates", params=params))

    def anomalous(self, night: str, top: int = 20, method: str = "aad") -> AnomalyRanking:
        """The night's (YYYYMMDD) objects, most anomalous first, as tuned by the experts' labels."""
        params = {"night": night, "top": top, "method": method}
        return cast(AnomalyRanking, self._json("GET", "/candidates/anomalous", params=params))

    # ------------------------------------------------------------------ watchlists
    def watchlists(self) -> list[Watchlist]:
        """The caller's watchlists (needs a token)."""
        return cast(list[Watchlist], self._json("GET", "/watchlists"))

    def watchlist(self, watchlist_id: int) -> Watchlist:
        return cast(Watchlist, self._json("GET", f"/watchlists/{int(watchlist_id)}"))

    def create_watchlist(self, name: str, entries: Sequence[Mapping[str, Any]] = ()) -> Watchlist:
        """A watchlist of sky positions: ``entries`` of ``{name, ra, dec, radius_arcsec}`` (degrees, arcsec)."""
        body = {"name": name, "entries": [dict(e) for e in entries]}
        return cast(Watchlist, self._json("POST", "/watchlists", json=body))

    def delete_watchlist(self, watchlist_id: int) -> None:
        self.request("DELETE", f"/watchlists/{int(watchlist_id)}")

    def watchlist_matches(self, watchlist_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts that fell in the watchlist, newest first."""
        path = f"/watchlists/{int(watchlist_id)}/matches"
        return cast(list[dict[str, Any]], self._json("GET", path, params={"limit": limit}))

    # ------------------------------------------------------------------ expert labels
    def labels(self, object_id: str) -> list[Label]:
        """The experts' answers about the object, oldest first."""
        return cast(list[Label], self._json("GET", f"/objects/{_path(object_id)}/labels"))

    def add_label(self, object_id: str, kind: str, class_: str | None = None, note: str = "") -> Label:
        """Answer about an object (astronomer or admin token): ``kind`` ``class`` (with ``class_``, a known
        class), ``interesting`` or ``bogus``; an optional note."""
        body: dict[str, Any] = {"kind": kind, "note": note}
        if class_ is not None:
            body["class"] = class_
        return cast(Label, self._json("POST", f"/objects/{_path(object_id)}/labels", json=body))
