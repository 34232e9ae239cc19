"""fer-study: which knob of a FER recipe matters, and by how much."""

from __future__ import annotations

__version__ = "0.1.0"
