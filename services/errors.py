"""Domain errors. Each states the rule that was broken and the offending value.

They are turned into HTTP / DIMSE / DICOMweb statuses only at the edges (CLI, gateway,
listener), never here.
"""

from __future__ import annotations


class MSLesionError(Exception):
    """Base class of every error the product raises on purpose."""


class InputError(MSLesionError):
    """The caller's input (images, masks, arguments) breaks a documented rule."""


class ModelError(MSLesionError):
    """A model folder is missing, inconsistent with its manifest, or unusable."""


class ProviderError(MSLesionError):
    """The requested ONNX Runtime execution provider is not available."""
