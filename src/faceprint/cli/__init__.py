"""The ``faceprint`` command line: a thin adapter over the public API.

JSON shapes printed with ``--json`` are stable; other tools read them.
"""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
