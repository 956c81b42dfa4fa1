"""One wiring object (jobs.context.Services), found one way: per app context and per job, never a global."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.context import current_services, use_services
from jobs.worker import make_worker
from tests.conftest import TEST_SETTINGS
from tichdiem import migrate
from tichdiem.app import create_app


def _app(tmp_path: Path, name: str):  # type: ignore[no-untyped-def]
    return create_app(
        TEST_SETTINGS.with_overrides(database_url=f"sqlite:///{tmp_path / name}.db", shop_name=name),
        config={"TESTING": True},
    )


def report_shop_name() -> str:
    return current_services().settings.shop_name


def test_two_apps_in_one_process_each_see_their_own(tmp_path: Path) -> None:
    first, second = _app(tmp_path, "first"), _app(tmp_path, "second")
    with first.app_context():
        assert current_services().settings.shop_name == "first"
        with second.app_context():
            assert current_services().settings.shop_name == "second"
        assert current_services().settings.shop_name == "first"
    with pytest.raises(RuntimeError, match="no current services"):
        current_services()


def test_a_worker_performs_jobs_with_its_own_services(tmp_path: Path) -> None:
    first, second = _app(tmp_path, "first"), _app(tmp_path, "second")  # the second app was made last
    services = first.extensions["tichdiem"]
    migrate.upgrade(services.engine)  # the worker looks for waiting events first
    job = services.queue.enqueue(report_shop_name)
    make_worker(services, simple=True).work(burst=True, logging_level="WARNING")
    job.refresh()
    assert job.return_value() == "first"
    assert second.extensions["tichdiem"].settings.shop_name == "second"


def test_tests_can_build_their_own_without_touching_a_global(tmp_path: Path) -> None:
    services = _app(tmp_path, "own").extensions["tichdiem"]
    with use_services(services):
        assert report_shop_name() == "own"
