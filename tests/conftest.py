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
