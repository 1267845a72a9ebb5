"""The coarse class taxonomy used everywhere; fine BTS/TNS labels are mapped here, once."""

from __future__ import annotations

OTHER = "Other"

COARSE_CLASSES: tuple[str, ...] = (
    "SN Ia",
    "SN II",
    "SN Ibc",
    "SN IIn",
    "SN Ibn/Icn",
    "SLSN-I",
    "SLSN-II",
    "TDE",
    "nova",
    OTHER,
)

# Rare classes never trained as base classes: they are registered from K support examples (the
# SLSN and TDE catalogues) with ``ProtoNetClassifier.with_class``, which is what evaluation measures.
SUPPORT_ONLY: tuple[str, ...] = ("SLSN-I", "TDE")

_FINE_TO_COARSE: dict[str, str] = {
    **{k: "SN Ia" for k in ("SN Ia", "SN Ia-91T", "SN Ia-pec", "SN Ia-91bg", "SN Iax", "SN Ia-CSM")},
    **{k: "SN II" for k in ("SN II", "SN IIP", "SN IIb", "SN II-pec", "SN IIL")},
    **{k: "SN Ibc" for k in ("SN Ib", "SN Ic", "SN Ic-BL", "SN Ib/c", "SN Ib-pec", "SN Ic-pec")},
    "SN IIn": "SN IIn",
    "SN Ibn": "SN Ibn/Icn",
    "SN Icn": "SN Ibn/Icn",
    "SLSN-I": "SLSN-I",
    "SLSN-II": "SLSN-II",
    "TDE": "TDE",
    "nova": "nova",
    "Nova": "nova",
}


def to_coarse(label: str | None) -> str:
    """Map a fine spectroscopic label (BTS/TNS spelling, with or without the ``SN`` prefix) to a coarse class."""
    if label is None:
        return OTHER
    text = str(label).strip()
    if text in _FINE_TO_COARSE:
        return _FINE_TO_COARSE[text]
    if not text.startswith(("SN ", "SLSN", "TDE")) and f"SN {text}" in _FINE_TO_COARSE:
        return _FINE_TO_COARSE[f"SN {text}"]
    return OTHER
