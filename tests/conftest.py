"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from tests.sandbox.mongo import MongoServer, start_mongodb


@pytest.fixture(scope="session")
def mongodb(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[MongoServer]:
    """A real MongoDB-compatible server: $MONGODB_URI, else FerretDB started for the session."""
    server = start_mongodb(pathlib.Path(tmp_path_factory.mktemp("mongodb")))
    yield server
    server.stop()


@pytest.fixture
def fresh_log_protection(monkeypatch: pytest.MonkeyPatch) -> t.Iterator[None]:
    """No log redaction installed when the test starts, and none left behind when it ends."""
    import logging

    from ansible_collections.selfhosted.github_runners.plugins.module_utils import _logging

    factory = logging.getLogRecordFactory()
    monkeypatch.setattr(_logging, "_installed", False)
    monkeypatch.setattr(_logging, "_known", set())
    yield
    logging.setLogRecordFactory(factory)
