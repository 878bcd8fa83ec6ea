"""Domain errors. Each states the rule that was broken and the offending value.

The error contract: every failure the product raises on purpose is an :class:`MSLesionError`,
and each class carries the answer its protocols give for it, as class attributes:

- ``exit_code``: the CLI's exit status (``mslesion`` prints one ``error: ...`` line);
- ``http_status``: the gateway's status. A caller's mistake (4xx) is explained in the body's
  ``detail``; a fault of the node (5xx) is logged, and the body only names its class.

The edges read these attributes in one place each (``mslesion.cli.main`` and the exception
handler of ``mslesion.api.main``). The DICOM listener and STOW-RS answer with the DICOM status
an :class:`~mslesion.services.ingest.IngestError` carries.
"""

from __future__ import annotations

from typing import ClassVar


class MSLesionError(Exception):
    """Base class of every error the product raises on purpose.

    Unclassified, it is a fault of the node (its configuration, its state): HTTP 500.
    """

    exit_code: ClassVar[int] = 2
    http_status: ClassVar[int] = 500


class InputError(MSLesionError):
    """The caller's input (images, masks, arguments) breaks a documented rule."""

    http_status = 422


class ConflictError(InputError):
    """The input contradicts what the node already holds.

    For example a key name already in use, or a study known under another patient.
    """

    http_status = 409


class ConfigError(MSLesionError):
    """The node's settings break a rule (a value out of range, a setting missing its pair)."""


class ModelError(MSLesionError):
    """A model folder is missing, inconsistent with its manifest, or unusable."""

    http_status = 503


class ProviderError(MSLesionError):
    """The requested ONNX Runtime execution provider is not available."""

    http_status = 503


class RegistrationError(InputError):
    """Two studies (or series) could not be aligned: no comparison is made from them."""
