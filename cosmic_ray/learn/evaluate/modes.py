"""The evaluation inputs as one context mode sees them (``light_curve``, ``alert_time``, ``with_redshift``).

The featurized inputs are built once (:func:`~cosmic_ray.learn.evaluate.inputs.prepare_inputs`,
unmasked context); :func:`inputs_in_mode` masks the context of every part (data, phases, support,
training) by mode, without featurizing again. :func:`mode_key` tells modes that show exactly the
same values apart from those that do not (no context at all, or no redshift anywhere), so the
report scores such modes once.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from cosmic_ray.core.context import FEATURE_FIELDS, visible_fields
from cosmic_ray.learn.evaluate.context import mask_matrix
from cosmic_ray.learn.evaluate.inputs import EvaluationInputs, LabelledArrays


def arrays_in_mode(arrays: LabelledArrays, mode: str, shown: tuple[str, ...]) -> LabelledArrays:
    """``arrays`` with its context masked for ``mode`` (the light curves and features shared, not copied)."""
    if arrays.context is None:
        return dataclasses.replace(arrays, context_shown=shown)
    return dataclasses.replace(arrays, context=mask_matrix(arrays.context, mode), context_shown=shown)


def _parts(inputs: EvaluationInputs) -> list[LabelledArrays]:
    parts = [inputs.data, inputs.train, *inputs.phases.values()]
    return parts + ([inputs.support] if inputs.support is not None else [])


def inputs_in_mode(inputs: EvaluationInputs, mode: str) -> EvaluationInputs:
    """Every part of ``inputs`` with its context masked for ``mode``.

    ``context_shown`` (the columns the baseline appends) is the fields ``mode`` shows that some
    object of some part knows: the same columns for training and scoring, none without context.

    Raises:
        ValueError: an unknown mode.
    """
    visible = visible_fields(mode)
    known = set()
    for a in _parts(inputs):
        if a.context is not None and len(a.context):
            known |= {FEATURE_FIELDS[j] for j in np.flatnonzero(np.isfinite(a.context).any(axis=0))}
    shown = tuple(f for f in visible if f in known)
    return dataclasses.replace(
        inputs,
        data=arrays_in_mode(inputs.data, mode, shown),
        phases={days: arrays_in_mode(a, mode, shown) for days, a in inputs.phases.items()},
        support=arrays_in_mode(inputs.support, mode, shown) if inputs.support is not None else None,
        train=arrays_in_mode(inputs.train, mode, shown),
    )


def mode_key(inputs: EvaluationInputs) -> str:
    """A digest of what a masked view shows (the shown columns and every context value).

    Two views with the same key feed the scorers the same numbers (e.g. every mode without context).
    """
    digest = hashlib.sha256(repr(inputs.data.context_shown).encode())
    for a in _parts(inputs):
        digest.update(b"none" if a.context is None else np.ascontiguousarray(a.context).tobytes())
    return digest.hexdigest()
