"""The RQ queue: a real Redis when REDIS_URL is set, else an in-process fake Redis (embedded default)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from types import FrameType

import fakeredis
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, cron_scheduler_registry
from rq.cron import CronScheduler
from rq.exceptions import SchedulerNotFound, StopRequested
from rq.scheduler import RQScheduler
from rq.worker import BaseWorker

from jobs import lane
from jobs.context import Services
from jobs.worker import make_worker
from tichdiem.config import QUEUE_NAME

log = logging.getLogger(__name__)

EMBEDDED_POLL_SECONDS = 0.2
MAINTENANCE_SECONDS = 30  # RQ's default is 10 minutes: a dead scheduler froze retries that long
# A burst worker enqueues the due scheduled jobs once at its start (RQ does that in burst mode), and must not fork
# a scheduler process later: RQ's maintenance does so even in burst mode, and its SIGTERM at the end of the burst
# can reach the new process before it installs its own handlers, which then runs forever and the worker with it
# (seen: a 10,000-message bench.broadcast burst hung in teardown with everything sent).
BURST_MAINTENANCE_SECONDS = 7 * 24 * 3600
RESTART_PAUSE, MAX_RESTART_PAUSE = 1.0, 30.0
CRON_BEAT_SECONDS = 10  # the cron's longest sleep: how soon it notices Redis is gone


def make_redis(redis_url: str | None) -> Redis:
    if redis_url:
        return Redis.from_url(redis_url)
    # One fake server per process, shared by the web threads and the embedded worker.
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def make_queue(connection: Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)


def run_worker(services: Services, *, burst: bool = False, simple: bool = False) -> None:
    """The production worker (`tichdiem worker`): RQ's work loop with the retry scheduler, and the inbound lane
    (`jobs.lane`) in a thread beside it.

    `simple` runs jobs in the worker's own process (lower latency, no isolation between jobs); without it RQ
    forks a work horse per job and the lane only turns waiting events into RQ jobs (see jobs.lane.Lane).

    The lane needs only the database, so customers are answered while Redis is away; it stops with the worker
    (SIGINT/SIGTERM), after the event in hand.
    """
    if burst:
        _run_rq_worker(services, burst=True, simple=simple)
        return
    inbound = lane.Lane(services, convert=not simple)
    inbound.start()
    try:
        _run_rq_worker(services, burst=False, simple=simple)
    finally:
        inbound.stop()
        inbound.join()


def _run_rq_worker(services: Services, *, burst: bool, simple: bool) -> None:
    """RQ's work loop, made to survive Redis going away: RQ retries a dropped connection while waiting for jobs,
    and anything that still ends the work loop (Redis restarted empty, an error between jobs) starts a new worker
    after a short, growing pause, instead of exiting (under honcho one exiting process stops them all). Only a
    stop request (SIGINT/SIGTERM) or `--burst` ends it. The scheduler (retries, delayed sends) is checked every
    MAINTENANCE_SECONDS and started again if it died.
    """
    pause = RESTART_PAUSE
    while True:
        started = time.monotonic()
        worker = None
        try:
            interval = BURST_MAINTENANCE_SECONDS if burst else MAINTENANCE_SECONDS
            worker = make_worker(services, simple=simple, maintenance_interval=interval)
            worker.work(burst=burst, with_scheduler=True)
        except RedisError as exc:  # making the worker talks to Redis too
            if _stop_requested(worker):  # SIGTERM while Redis was down: RQ's unregistering raised over it
                return
            log.error("worker: Redis lost (%s); a new worker starts in %.0f s", exc, pause)
        else:
            if burst or _stop_requested(worker):
                return
            log.warning("worker: the work loop ended by itself; a new worker starts in %.0f s", pause)
        if time.monotonic() - started > MAX_RESTART_PAUSE:  # it ran fine for a while: a fresh outage
            pause = RESTART_PAUSE
        try:
            time.sleep(pause)
        except StopRequested:  # SIGTERM between two workers (the last one's handler is still installed)
            return
        pause = min(pause * 2, MAX_RESTART_PAUSE)


def run_worker_pool(services: Services, *, processes: int, burst: bool = False, simple: bool = False) -> None:
    """`tichdiem worker --processes N`: N workers in child processes of this one, each started again if it
    ends by itself (the supervisor sees one process). Replies mostly wait on Zalo's answer, so several
    single-process workers per core keep the cores busy where one waits; a SIGTERM or SIGINT is passed on to
    every child and ends the pool once they have finished their jobs."""
    if processes <= 1:
        run_worker(services, burst=burst, simple=simple)
        return
    children: set[int] = set()
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def start_child() -> None:
        pid = os.fork()
        if pid == 0:  # the child: a worker of its own (database pools are reset after fork: tichdiem.db)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                run_worker(services, burst=burst, simple=simple)
            except BaseException:  # noqa: BLE001 - whatever it was, the parent starts a new one
                log.exception("worker: a pool member failed")
                code = 1
            os._exit(code)
        children.add(pid)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(processes):
        start_child()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if stopping or burst:
            continue
        log.error("worker: pool member %s ended (status %s); a new one starts", pid, status)
        time.sleep(RESTART_PAUSE)
        start_child()


def _stop_requested(worker: BaseWorker | None) -> bool:
    return worker is not None and worker._shutdown_requested_date is not None  # SIGINT or SIGTERM


def run_embedded_worker(services: Services, stop: threading.Event) -> None:
    """The embedded worker: same jobs, in this process's main thread, on the fake Redis.

    RQ's scheduler normally runs as a forked process, which cannot see an in-process fake Redis,
    so this loop moves due scheduled jobs (retries with backoff) itself between bursts.
    """
    queue = services.queue
    scheduler = RQScheduler([queue], connection=queue.connection)
    worker = make_worker(services, simple=True)
    recurring = make_cron(queue)
    try:
        while not stop.is_set():
            if not scheduler.acquired_locks:
                scheduler.acquire_locks()
            scheduler.enqueue_scheduled_jobs()
            recurring.enqueue_jobs()
            if queue.count or lane.waiting(services.sessions):
                worker.work(burst=True, logging_level="WARNING")
                if _stop_requested(worker):  # SIGTERM during a job: RQ finished it and stopped; so do we
                    return
            stop.wait(EMBEDDED_POLL_SECONDS)
    except StopRequested:  # SIGTERM between two bursts: RQ's handler, installed by the last one, raises it
        return


class RedisEmptied(RedisError):
    """Redis answered again but had lost everything (restarted without persistence)."""


class _Cron(CronScheduler):
    """RQ's cron scheduler, made to live through Redis outages.

    It wakes at least every CRON_BEAT_SECONDS (RQ sleeps up to a minute), so a lost Redis is noticed within
    seconds, and a Redis that came back empty between two beats counts as lost. Unregistering on the way out
    tolerates an emptied or absent Redis (RQ's own raises, which would replace the stop request), and a stop
    request is remembered so that run_cron can tell a stop from a failure.
    """

    stop_requested = False

    def calculate_sleep_interval(self) -> float:
        return min(super().calculate_sleep_interval(), CRON_BEAT_SECONDS)

    def heartbeat(self) -> None:
        emptied = self.connection.zscore(cron_scheduler_registry.get_registry_key(), self.name) is None
        super().heartbeat()
        if emptied:  # Redis came back empty between two beats: start over, as after an outage
            raise RedisEmptied("the cron scheduler's registration was gone")

    def register_death(self, pipeline: Pipeline | None = None) -> None:
        try:
            super().register_death(pipeline)
        except (RedisError, SchedulerNotFound):  # Redis gone or restarted empty: nothing left to unregister
            pass

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super()._request_stop(signum, frame)


def make_cron(queue: Queue) -> _Cron:
    """RQ's cron scheduler with every job of jobs/cron.py."""
    scheduler = _Cron(connection=queue.connection, logging_level=logging.WARNING)
    scheduler.load_config_from_file("jobs.cron")
    return scheduler


def run_cron(queue: Queue) -> None:
    """The `cron` process of the Procfile: enqueues recurring jobs; `tichdiem worker` runs them.

    RQ's CronScheduler ends on the first Redis error (its heartbeat raises); this starts a new one after a
    short, growing pause until Redis answers again. A new one enqueues every interval job at once, the
    recovery tick among them, so whatever the outage left behind is picked up as soon as Redis is back.
    Only a stop request (SIGINT/SIGTERM) ends it.
    """
    pause = RESTART_PAUSE
    while True:
        started = time.monotonic()
        cron = make_cron(queue)
        try:
            cron.start()
        except RedisError as exc:
            log.error("cron: Redis lost (%s); the scheduler starts again in %.0f s", exc, pause)
        if cron.stop_requested:
            return
        if time.monotonic() - started > MAX_RESTART_PAUSE:  # it ran fine for a while: a fresh outage
            pause = RESTART_PAUSE
        try:
            time.sleep(pause)
        except StopRequested:  # the last scheduler's signal handlers are still installed
            return
        pause = min(pause * 2, MAX_RESTART_PAUSE)
