"""The RQ queue: a real Redis when REDIS_URL is set, else an in-process fake Redis (embedded default)."""

from __future__ import annotations

import logging
import threading

import fakeredis
from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.scheduler import RQScheduler

log = logging.getLogger(__name__)

QUEUE_NAME = "default"
EMBEDDED_POLL_SECONDS = 0.2


def make_redis(redis_url: str | None) -> Redis:
    if redis_url:
        return Redis.from_url(redis_url)
    # One fake server per process, shared by the web threads and the embedded worker.
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def make_queue(connection: Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)


def run_worker(queue: Queue, *, burst: bool = False) -> None:
    """The production worker (`tichdiem worker`): forks a work horse per job, runs the retry scheduler."""
    Worker([queue], connection=queue.connection).work(burst=burst, with_scheduler=True)


def run_embedded_worker(queue: Queue, stop: threading.Event) -> None:
    """The embedded worker: same jobs, in this process's main thread, on the fake Redis.

    RQ's scheduler normally runs as a forked process, which cannot see an in-process fake Redis,
    so this loop moves due scheduled jobs (retries with backoff) itself between bursts.
    """
    scheduler = RQScheduler([queue], connection=queue.connection)
    worker = SimpleWorker([queue], connection=queue.connection)
    while not stop.is_set():
        if not scheduler.acquired_locks:
            scheduler.acquire_locks()
        scheduler.enqueue_scheduled_jobs()
        if queue.count:
            worker.work(burst=True, logging_level="WARNING")
        stop.wait(EMBEDDED_POLL_SECONDS)
