"""Magnitude systems and filter names of heterogeneous catalogues: Vega -> AB offsets, each
filter's native system, canonical filter, survey and band names (``<survey>_<filter>``).

Used by :mod:`cosmic_ray.sources.catalogs` to convert every row to AB once, in one place.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from astropy import units as u

# m_AB - m_Vega, per filter family and filter; AB = Vega + offset.
# Johnson-Cousins UBVRI, SDSS ugriz and 2MASS JHKs: Blanton & Roweis 2007, AJ 133, 734, Table 1
#   (K is taken as Ks).
# Swift/UVOT UVW2, UVM2, UVW1, U, B, V: Breeveld et al. 2011, AIP Conf. Proc. 1358, 373, Table 1.
# WISE W1-W4: Jarrett et al. 2011, ApJ 735, 112, and the WISE All-Sky explanatory supplement 4.4h.
VEGA_TO_AB: dict[str, dict[str, u.Quantity]] = {
    "standard": {
        "U": 0.79 * u.mag,
        "B": -0.09 * u.mag,
        "V": 0.02 * u.mag,
        "R": 0.21 * u.mag,
        "I": 0.45 * u.mag,
        "u": 0.91 * u.mag,
        "g": -0.08 * u.mag,
        "r": 0.16 * u.mag,
        "i": 0.37 * u.mag,
        "z": 0.54 * u.mag,
        "J": 0.91 * u.mag,
        "H": 1.39 * u.mag,
        "Ks": 1.85 * u.mag,
        "K": 1.85 * u.mag,
    },
    "swift": {
        "UVW2": 1.73 * u.mag,
        "UVM2": 1.69 * u.mag,
        "UVW1": 1.51 * u.mag,
        "U": 1.02 * u.mag,
        "B": -0.13 * u.mag,
        "V": -0.01 * u.mag,
    },
    "wise": {"W1": 2.699 * u.mag, "W2": 3.339 * u.mag, "W3": 5.174 * u.mag, "W4": 6.620 * u.mag},
}

# The system a filter's magnitudes are quoted in when a catalogue row does not say.
NATIVE_SYSTEM: dict[str, str] = {
    **{f: "AB" for f in ("u", "g", "r", "i", "z", "y", "w", "o", "c", "G", "NUV", "FUV")},
    **{f: "Vega" for f in ("U", "B", "V", "R", "I", "J", "H", "K", "Ks", "W1", "W2", "W3", "W4")},
    **{f: "Vega" for f in ("UVW2", "UVM2", "UVW1")},  # UVOT's own system
}

_FILTER_ALIASES = {"orange": "o", "cyan": "c"}
_SWIFT_SHORT = {"W1": "UVW1", "W2": "UVW2", "M2": "UVM2"}
_SURVEY_ALIASES = {
    "panstarrs1": "ps1",
    "panstarrs": "ps1",
    "gpc1": "ps1",
    "gpc": "ps1",
    "atlas1": "atlas",
    "acam1": "atlas",
    "asassn1": "asassn",
    "uvot": "swift",
    "flwo48": "flwo",
    "lcogt": "lco",
    "ptf48inch": "ptf",
    "ptf60inch": "p60",
    "cfh12k": "ptf",
}
_MISSING = {"", "--", "nan", "none"}


def text_or_empty(value: Any) -> str:
    """A catalogue cell as stripped text; missing values (None, NaN, ``--``, ``nan``...) as ``""``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value).strip()
    return "" if text.lower() in _MISSING else text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def filter_family(telescope: Any, instrument: Any, filter_name: str) -> str:
    """``swift``, ``wise`` or ``standard``: which Vega->AB table a filter is read from."""
    tel, inst = _slug(text_or_empty(telescope)), _slug(text_or_empty(instrument))
    if "swift" in (tel, inst) or "uvot" in (tel, inst) or filter_name in ("UVW2", "UVM2", "UVW1"):
        return "swift"
    if filter_name in ("W1", "W2", "W3", "W4"):
        return "wise"
    return "standard"


def canonical_filter(filter_name: Any, telescope: Any = None, instrument: Any = None) -> str:
    """Filter name in one spelling: ATLAS ``orange``/``cyan`` -> ``o``/``c``, UVOT ``W1/W2/M2`` -> ``UVW1/UVW2/UVM2``."""
    name = text_or_empty(filter_name)
    name = _FILTER_ALIASES.get(name, name)
    tel, inst = _slug(text_or_empty(telescope)), _slug(text_or_empty(instrument))
    if name in _SWIFT_SHORT and ("swift" in (tel, inst) or "uvot" in (tel, inst) or name == "M2"):
        return _SWIFT_SHORT[name]
    return name


def ab_offset(
    filter_name: str, system: Any, family: str = "standard", assume_native_system: bool = True
) -> tuple[float | None, str]:
    """Offset to add to a magnitude to make it AB, or ``None`` and the reason it cannot be.

    Args:
        filter_name: canonical filter (:func:`canonical_filter`).
        system: ``AB``, ``Vega`` or missing.
        family: :func:`filter_family` of the row.
        assume_native_system: give a row without a system its filter's :data:`NATIVE_SYSTEM`.

    Returns:
        ``(offset_mag, system_used)`` or ``(None, reason)``.
    """
    sys_name = text_or_empty(system)
    if not sys_name:
        if not assume_native_system:
            return None, f"no magnitude system given for filter {filter_name!r}"
        if filter_name in ("W1", "W2") and family != "wise":
            return None, f"filter {filter_name!r} without telescope or system: Swift/UVOT or WISE?"
        sys_name = NATIVE_SYSTEM.get(filter_name, "")
        if not sys_name:
            return None, f"no magnitude system given and none native to filter {filter_name!r}"
    if sys_name.upper() == "AB":
        return 0.0, "AB"
    if sys_name.lower() == "vega":
        offset = VEGA_TO_AB.get(family, {}).get(filter_name)
        if offset is None:
            return None, f"no Vega->AB offset for {family} filter {filter_name!r}"
        return float(offset.to_value(u.mag)), "Vega"
    return None, f"unknown magnitude system {sys_name!r}"


def survey_name(telescope: Any, instrument: Any) -> str:
    """Short survey/telescope name used in band names (``ztf``, ``ptf``, ``atlas``, ``ps1`` ...)."""
    tel, inst = _slug(text_or_empty(telescope)), _slug(text_or_empty(instrument))
    if inst.startswith("ztf") or tel.startswith("ztf"):
        return "ztf"
    if tel == "p48":
        return "ptf"  # P48 photometry not from the ZTF camera is (i)PTF's CFH12k
    if inst in ("uvot", "swift") or tel in ("uvot", "swift"):
        return "swift"
    name = tel or inst
    return _SURVEY_ALIASES.get(name, name) or "unknown"


def band_name(survey: str, filter_name: str) -> str:
    """``g``/``r``/``i`` for ZTF, ``<survey>_<filter>`` otherwise."""
    if survey == "ztf" and filter_name in ("g", "r", "i"):
        return filter_name
    return f"{survey}_{filter_name}"
