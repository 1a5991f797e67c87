"""Fixtures of the webhook router's integration tests: the service on a fresh database of the test MongoDB."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from tests.integration.router.service import RouterProcess, running, write_config
from tests.sandbox.mongo import MongoServer


@pytest.fixture
def jobs(raw_db: t.Any) -> t.Any:
    """The jobs collection of the test database, read with a plain pymongo client."""
    return raw_db["jobs"]


@pytest.fixture
def router(tmp_path: pathlib.Path, mongodb: MongoServer, database: str) -> t.Iterator[RouterProcess]:
    """The service, started with `python -m`, on the test database; stopped with SIGTERM after the test."""
    with running(write_config(tmp_path / "router", mongodb.uri, database)) as process:
        yield process
    assert process.process.returncode == 0, "\n".join(process.log)
