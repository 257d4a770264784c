"""An API server of its own, for tests that need settings the shared one does not have."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from postroom.app import create_app
from postroom.settings import LimitSettings
from tests.conftest import make_settings
from tests.servers.http import serve_in_thread

ApiFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def api_factory(database_url: str, tmp_path: Path) -> ApiFactory:
    @contextmanager
    def build(database: str | None = None, **limits: Any) -> Iterator[str]:
        settings = make_settings(
            database or database_url, tmp_path / "data", limits=LimitSettings(**limits)
        )
        with serve_in_thread(create_app(settings)) as url:
            yield url

    return build
