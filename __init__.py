"""xrdiag: cross-lingual alignment and robustness diagnostics for multilingual encoders."""

from __future__ import annotations

__version__ = "0.1.0"
