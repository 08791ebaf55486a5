"""The repository contract (repository_contract.py), run once per backend: fake, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_testing import fresh_schema
from repository_contract import RepositoryContract, RepositoryFactory

from app.repository.events_repository import EventRepository, SqliteEventRepository
from app.repository.memory import InMemoryEventRepository
from app.repository.postgres_repository import PostgresEventRepository


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def make_repository(self) -> RepositoryFactory:
        shared = InMemoryEventRepository()
        return lambda: shared


class TestSqliteRepository(RepositoryContract):
    @pytest.fixture
    def make_repository(self, tmp_path: Path) -> Iterator[RepositoryFactory]:
        opened: list[EventRepository] = []

        def make() -> EventRepository:
            repo = SqliteEventRepository(tmp_path / "events.db", synchronous="NORMAL")
            opened.append(repo)
            return repo

        yield make
        for repo in opened:
            repo.close()


class TestPostgresRepository(RepositoryContract):
    @pytest.fixture
    def make_repository(self) -> Iterator[RepositoryFactory]:
        opened: list[EventRepository] = []
        with fresh_schema("contract") as url:

            def make() -> EventRepository:
                repo = PostgresEventRepository(url, pool_max_size=4)
                opened.append(repo)
                return repo

            yield make
            for repo in opened:
                repo.close()
