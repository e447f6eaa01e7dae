"""Fixtures every suite shares: the storage backends a runtime test runs on."""

from __future__ import annotations

from pathlib import Path

import pytest

BACKENDS = ("memory", "sqlite")


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each runtime, pattern and scenario test runs once in memory and once on SQLite.

    The SQLite leg uses the production path (files in ``tmp_path``, group commit
    on), so a bug that shows only on the default backend cannot hide.
    """
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'store'}"
