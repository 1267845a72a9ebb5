"""One small exception hierarchy for the whole package."""

from __future__ import annotations


class CosmicRayError(Exception):
    """Base class of every error cosmic_ray raises on purpose."""


class ConfigError(CosmicRayError):
    """A setting or a job config is missing or invalid."""


class SourceError(CosmicRayError):
    """A source could not be read at all (no input, unreadable folder)."""


class BadAlertError(SourceError):
    """One alert packet or record cannot be decoded; it is quarantined, the rest go on."""


class BadLightCurveError(CosmicRayError):
    """A light curve is empty or has no usable point."""


class RemoteServiceError(SourceError):
    """An archive (MAST, IRSA, ...) answered with an error or did not answer."""


class ModelNotFoundError(CosmicRayError):
    """No model is registered (or no version carries the requested alias)."""


class IncompatibleModelError(ModelNotFoundError):
    """A saved model was trained on inputs this code no longer computes (another feature set)."""


class UntrustedModelError(ModelNotFoundError):
    """A model bundle is unsigned, signed with another key, or changed after signing: it is not loaded."""


class TrainingError(CosmicRayError):
    """Training could not produce a model (too few classes or objects, failed run)."""
