"""Shared fixtures: real face data from ../shared/data (override with FACEPRINT_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("FACEPRINT_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "lfw").is_dir():
        pytest.skip(f"face data not found at {root}: set FACEPRINT_DATA to the shared data folder")
    return root
