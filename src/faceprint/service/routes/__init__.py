"""The service's routers: faces (detect, embed, identify, verify), people (the gallery), system."""

from __future__ import annotations

from . import faces, people, system

__all__ = ["faces", "people", "system"]
