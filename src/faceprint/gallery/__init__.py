"""Persistent face gallery: SQLite store + vector index + open-set identification (issue 4).

    store.py    the SQLite file (people, samples, descriptors, model id) and its transactions
    index.py    faiss-shaped vector indexes: ExactIndex (reference) and IVFIndex (faiss, approximate)
    gallery.py  the Gallery facade: enrol, edit, identify, export/import, re-embed
"""

from __future__ import annotations

from .gallery import EnrolReport, EnrolResult, Gallery, read_export
from .index import EXACT_MAX, ExactIndex, IVFIndex, VectorIndex, make_index
from .store import Sample

__all__ = [
    "EXACT_MAX",
    "EnrolReport",
    "EnrolResult",
    "ExactIndex",
    "Gallery",
    "IVFIndex",
    "Sample",
    "VectorIndex",
    "make_index",
    "read_export",
]
