"""Links out from an object page to the public services astronomers check: built, never fetched.

Each link is made from the object's position or name alone (the server sends nothing to these
services): TNS (by IAU name), ALeRCE and Fink (by ZTF id), SIMBAD (a cone query around the
position) and the Legacy Survey viewer (DR10 images at the position).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from cosmic_ray.sources.crossmatch import iau_name, ztf_name

SIMBAD_RADIUS_ARCSEC = 10


def links_out(object_id: str, ra: float | None, dec: float | None, tns_name: str | None) -> list[tuple[str, str]]:
    """``(service, url)`` of every link the object's id, position and TNS name allow."""
    out: list[tuple[str, str]] = []
    tns = iau_name(tns_name) if tns_name else None
    if tns:
        out.append(("TNS", f"https://www.wis-tns.org/object/{quote(tns)}"))
    ztf = ztf_name(object_id)
    if ztf:
        out.append(("ALeRCE", f"https://alerce.online/object/{ztf}"))
        out.append(("Fink", f"https://fink-portal.org/{ztf}"))
    if ra is not None and dec is not None:
        coord = f"{ra:.6f} {dec:+.6f}"
        simbad = urlencode(
            {"Coord": coord, "CooFrame": "ICRS", "Radius": SIMBAD_RADIUS_ARCSEC, "Radius.unit": "arcsec"}
        )
        out.append(("SIMBAD", f"https://simbad.cds.unistra.fr/simbad/sim-coo?{simbad}"))
        legacy = urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "layer": "ls-dr10", "zoom": 16})
        out.append(("Legacy Survey", f"https://www.legacysurvey.org/viewer?{legacy}"))
    return out
