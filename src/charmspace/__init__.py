"""charmspace: a runtime for charms — reactive programs whose state lives in persisted cells."""

from __future__ import annotations

__version__ = "0.1.0"
