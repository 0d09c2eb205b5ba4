"""The query API and dashboard over the store (``xreid serve``): see ``create_app``."""

from pipeline.api.app import create_app

__all__ = ["create_app"]
