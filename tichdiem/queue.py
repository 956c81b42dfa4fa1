"""The RQ queue: a real Redis when REDIS_URL is set, else an in-process fake Redis (embedded default)."""

from __future__ import annotations

import logging
import threading

import fakeredis
from redis import Redis
from rq import Queue
from rq.cron import CronScheduler
from rq.scheduler import RQScheduler

from jobs.context import Services
from jobs.worker import make_worker
from tichdiem.config import QUEUE_NAME

log = logging.getLogger(__name__)

EMBEDDED_POLL_SECONDS = 0.2


def make_redis(redis_url: str | None) -> Redis:
    if redis_url:
        return Redis.from_url(redis_url)
    # One fake server per process, shared by the web threads and the embedded worker.
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def make_queue(connection: Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)


def run_worker(services: Services, *, burst: bool = False, simple: bool = False) -> None:
    """The production worker (`tichdiem worker`): forks a work horse per job, runs the retry scheduler.

    `simple` runs jobs in the worker's own process (lower latency, no isolation between jobs).
    """
    make_worker(services, simple=simple).work(burst=burst, with_scheduler=True)


def run_embedded_worker(services: Services, stop: threading.Event) -> None:
    """The embedded worker: same jobs, in this process's main thread, on the fake Redis.

    RQ's scheduler normally runs as a forked process, which cannot see an in-process fake Redis,
    so this loop moves due scheduled jobs (retries with backoff) itself between bursts.
    """
    queue = services.queue
    scheduler = RQScheduler([queue], connection=queue.connection)
    worker = make_worker(services, simple=True)
    recurring = make_cron(queue)
    while not stop.is_set():
        if not scheduler.acquired_locks:
            scheduler.acquire_locks()
        scheduler.enqueue_scheduled_jobs()
        recurring.enqueue_jobs()
        if queue.count:
            worker.work(burst=True, logging_level="WARNING")
        stop.wait(EMBEDDED_POLL_SECONDS)


def make_cron(queue: Queue) -> CronScheduler:
    """RQ's cron scheduler with every job of jobs/cron.py."""
    scheduler = CronScheduler(connection=queue.connection, logging_level=logging.WARNING)
    scheduler.load_config_from_file("jobs.cron")
    return scheduler


def run_cron(queue: Queue) -> None:
    """The `cron` process of the Procfile: enqueues recurring jobs; `tichdiem worker` runs them."""
    make_cron(queue).start()
