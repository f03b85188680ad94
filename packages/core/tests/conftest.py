from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import toy_plugin  # noqa: E402

from mars_core import plugins  # noqa: E402


@pytest.fixture
def toy():
    """Register the SYNTHETIC toy plugin for one test, and always unregister it."""
    plugins.reset()
    toy_plugin.install()
    try:
        yield toy_plugin
    finally:
        toy_plugin.uninstall()
        plugins.reset()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a temporary directory so mlflow.db, checkpoints etc. land there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
