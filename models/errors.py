"""The project's exception tree.

It lives in ``models`` because ``models`` is the bottom layer: ``pipeline`` and ``workers`` may
import it, ``models`` may import nothing of theirs. Workers catch ``XreidError`` and print one
actionable line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class XreidError(Exception):
    """Root of every error the project raises on purpose."""


class ConfigError(XreidError):
    """A configuration file, flag or environment override is invalid."""


class ContractError(XreidError):
    """A message, array or file does not match its data contract."""


class BusError(XreidError):
    """The message bus cannot be reached or refused an operation."""


class SourceError(XreidError):
    """A camera source cannot be opened or read."""


class WeightsNotFound(XreidError):
    """Model weights are neither cached locally nor downloadable here."""


class StoreError(XreidError):
    """The track store cannot be opened, migrated or written."""
