"""RQ workers that make their Services current for every job they perform (see jobs.context); a burst worker
handles the events waiting for a lane first (see jobs.lane)."""

from __future__ import annotations

from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.job import Job

from jobs import lane
from jobs.context import Services, use_services


class _WithServices:
    services: Services

    def work(self, *args: Any, **options: Any) -> bool:
        """RQ's work loop; in burst mode the events waiting for a lane are handled first (their follow-up jobs
        then run in the burst). A long-running worker's lane runs beside it (tichdiem.queue.run_worker)."""
        if options.get("burst", args[0] if args else False):
            handled = lane.drain(self.services)
            return bool(super().work(*args, **options)) or handled > 0  # type: ignore[misc]
        return bool(super().work(*args, **options))  # type: ignore[misc]

    def perform_job(self, job: Job, queue: Queue) -> bool:
        with use_services(self.services):
            result: bool = super().perform_job(job, queue)  # type: ignore[misc]
            return result


class ServicesWorker(_WithServices, Worker):
    """Forks a work horse per job; the horse inherits `services` and disposes the parent's pooled connections
    (tichdiem.db)."""


class ServicesSimpleWorker(_WithServices, SimpleWorker):
    """Performs jobs in its own process."""


def make_worker(services: Services, *, simple: bool = False, **options: Any) -> ServicesWorker | ServicesSimpleWorker:
    worker_class: type[ServicesWorker | ServicesSimpleWorker] = ServicesSimpleWorker if simple else ServicesWorker
    worker = worker_class([services.queue], connection=services.queue.connection, **options)
    worker.services = services
    return worker
