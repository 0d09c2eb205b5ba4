"""The query API and dashboard over the store (``xreid serve``): see ``create_app``."""

from .app import create_app

__all__ = ["create_app"]
