"""The `tichdiem` command: run (web + embedded worker), worker, db upgrade, events drain."""

from __future__ import annotations

import logging
import threading

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, routes_command, shell_command, with_appcontext
from werkzeug.serving import make_server

from jobs.context import Services
from models import utcnow
from tichdiem import migrate
from tichdiem.config import InsecureSettings, Settings
from tichdiem.extensions import services
from tichdiem.queue import run_embedded_worker
from webhooks.intake import enqueue_waiting, unhandled_event_ids


def _create_app() -> Flask:
    """The app behind every command. Unchecked: `db upgrade` or `staff create` serve nobody, and `run` without
    a Zalo account becomes the demo; the commands that serve or work (`run`, `worker`, `cron`) check first."""
    from tichdiem.app import create_app

    return create_app(check_secure=False)


def _require_secure(settings: Settings) -> None:
    try:
        settings.check_secure()
    except InsecureSettings as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """tichdiem: loyalty points inside a Zalo Official Account."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


main.add_command(shell_command)
main.add_command(routes_command)


def register_cli(app: Flask) -> None:
    """Put the commands on app.cli, so `tichdiem ...`, `flask ...` and the test runner all see them."""
    for command in (
        run_command,
        worker_command,
        db_group,
        events_group,
        outbox_group,
        staff_group,
        setup_code_command,
        store_group,
        apikey_group,
        cron_command,
        broadcast_group,
    ):
        app.cli.add_command(command)


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run_command(host: str, port: int) -> None:
    """Upgrade the database and serve the app; without REDIS_URL also run the jobs in-process.

    Without ZALO_APP_ID (no Zalo account) it runs the demo: the local Zalo emulator and a seeded demo shop.
    """
    from tichdiem.app import create_app
    from tichdiem.demo import DEMO_LOGINS, DEMO_PASSWORD, demo_settings, seed_demo

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    demo = not services().settings.zalo_app_id
    if demo:
        app = create_app(demo_settings(services().settings, f"http://{host}:{port}"))
    else:
        _require_secure(services().settings)
    svc: Services = app.extensions["tichdiem"]
    migrate.upgrade(svc.engine)
    base = f"http://{host}:{port}"
    if demo:
        with svc.sessions() as session:
            if seed_demo(session, utcnow()):
                session.commit()
        click.echo("Demo mode (no ZALO_APP_ID): the Zalo API is the local emulator.")
        click.echo(f"  Chat as a customer:      {base}/_emulator/")
        click.echo(f"  Chat + counter together: {base}/_emulator/demo")
        click.echo(f"  Cashier page:            {base}/counter/")
        click.echo(f"  Owner console:           {base}/admin/")
        logins = ", ".join(f"{user} / {DEMO_PASSWORD} ({role})" for user, role, _name, _store in DEMO_LOGINS)
        click.echo(f"  Logins: {logins}")
    else:
        _first_run_hint(svc, base)
    if svc.settings.emulator:
        from emulator.server import make_demo_server

        server = make_demo_server(host, port, app)
    else:
        server = make_server(host, port, app, threaded=True)
    click.echo(f"tichdiem on {base}  (health: {base}/healthz)")
    if not svc.settings.embedded_queue:
        click.echo("REDIS_URL is set: start `tichdiem worker` in another terminal to handle jobs.")
        server.serve_forever()
        return
    click.echo("No REDIS_URL: jobs run in this process (embedded queue).")
    _serve_with_embedded_worker(server, svc)


def _first_run_hint(svc: Services, base: str) -> None:
    """No owner yet: say where the setup page is and the code a browser on another machine needs."""
    from sqlalchemy import select

    from console.setup import setup_code
    from models import Role, Staff

    with svc.sessions() as session:
        if session.scalar(select(Staff.id).where(Staff.role == Role.OWNER).limit(1)) is not None:
            return
    click.echo(f"First run: open {base}/ to set up the shop (setup code: {setup_code(svc.settings.secret_key)})")


def _serve_with_embedded_worker(server: object, svc: Services) -> None:
    thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)  # type: ignore[attr-defined]
    thread.start()
    stop = threading.Event()
    try:
        # The worker owns the main thread: RQ installs signal handlers, which only work there.
        run_embedded_worker(svc, stop)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        stop.set()
        server.shutdown()  # type: ignore[attr-defined]


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--simple", is_flag=True, help="Run jobs in this process (no fork per job).")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Workers in child processes of this one (the Procfile runs 4 simple ones).",
)
@with_appcontext
def worker_command(burst: bool, simple: bool, processes: int) -> None:
    """Run RQ workers (with the retry scheduler) on REDIS_URL."""
    from tichdiem.queue import run_worker_pool

    svc = services()
    if svc.settings.embedded_queue:
        raise click.UsageError("REDIS_URL is not set: `tichdiem run` already runs the jobs in-process.")
    _require_secure(svc.settings)
    run_worker_pool(svc, processes=processes, burst=burst, simple=simple)


@click.command("cron")
@with_appcontext
def cron_command() -> None:
    """Run the recurring-job scheduler (jobs/cron.py) on REDIS_URL; one per deployment."""
    from tichdiem.queue import run_cron

    svc = services()
    if svc.settings.embedded_queue:
        raise click.UsageError("REDIS_URL is not set: `tichdiem run` already runs the recurring jobs in-process.")
    _require_secure(svc.settings)
    run_cron(svc.queue)


@click.group("db")
def db_group() -> None:
    """Database migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    migrate.upgrade(services().engine, revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    migrate.downgrade(services().engine, revision)
    click.echo(f"database at {revision}")


@click.group("events")
def events_group() -> None:
    """Webhook event maintenance."""


@events_group.command("drain")
@with_appcontext
def events_drain() -> None:
    """Enqueue every stored event that was never handled (e.g. Redis was down when it arrived)."""
    svc = services()
    with svc.sessions() as session:
        ids = unhandled_event_ids(session, limit=100_000)
    enqueued = enqueue_waiting(svc.queue, ids)
    click.echo(f"{enqueued} of {len(ids)} waiting event(s) enqueued")


@click.group("outbox")
def outbox_group() -> None:
    """Outgoing Zalo messages."""


@outbox_group.command("drain")
@with_appcontext
def outbox_drain() -> None:
    """Mark sends a dead worker interrupted as unknown; enqueue messages still pending (e.g. Redis was down)."""
    from jobs.outbox import enqueue_delivery, mark_interrupted, stuck_message_ids

    svc = services()
    with svc.sessions() as session:
        interrupted = mark_interrupted(session)
        session.commit()
        ids = stuck_message_ids(session)
    enqueue_delivery(svc.queue, ids)
    click.echo(f"{len(ids)} pending message(s) enqueued; {interrupted} interrupted send(s) marked unknown")


@click.group("staff")
def staff_group() -> None:
    """Console accounts."""


@staff_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["owner", "marketer", "cashier"]), default="owner", show_default=True)
@click.option("--name", default="", help="Display name.")
@click.option("--store", "store_code", default=None, help="Bind to a store (its code).")
@click.password_option(help="At least 8 characters (prompted when omitted).")
@with_appcontext
def staff_create(username: str, role: str, name: str, store_code: str | None, password: str) -> None:
    """Create a console account, e.g. the first owner: tichdiem staff create chu-quan"""
    from sqlalchemy import select

    from console.staff import StaffError, create_staff
    from models import Store

    with services().sessions() as session:
        store_id = None
        if store_code:
            store_id = session.scalar(select(Store.id).where(Store.code == store_code))
            if store_id is None:
                raise click.BadParameter(f"no store with code {store_code}", param_hint="--store")
        try:
            staff = create_staff(session, username=username, password=password, role=role, name=name, store_id=store_id)
        except StaffError as exc:
            raise click.ClickException(str(exc)) from exc
        session.commit()
        click.echo(f"created {staff.role} {staff.username}")


@staff_group.command("reset-password")
@click.argument("username")
@click.password_option(help="At least 8 characters (prompted when omitted).")
@with_appcontext
def staff_reset_password(username: str, password: str) -> None:
    """A new password for an account, from the server: the way back in when the only owner forgot hers.
    Lifts a lock-out, re-enables the account and ends its sessions; written to the audit log."""
    from sqlalchemy import select

    from console.staff import StaffError, set_password
    from models import AuditLog, Staff

    with services().sessions() as session:
        staff = session.scalar(select(Staff).where(Staff.username == username.strip().lower()))
        if staff is None:
            raise click.ClickException(f"no account named {username}")
        try:
            set_password(staff, password)
        except StaffError as exc:
            raise click.ClickException(str(exc)) from exc
        staff.is_active = True
        session.add(
            AuditLog(
                actor="cli",
                action="staff_update",
                created_at=utcnow(),
                details={"username": staff.username, "password": "reset"},
            )
        )
        session.commit()
        click.echo(f"new password set for {staff.role} {staff.username}; every session of the account has ended")


@click.command("setup-code")
@with_appcontext
def setup_code_command() -> None:
    """Print the one-time code the first-run setup page asks for (only while no owner exists)."""
    from console.setup import setup_code

    click.echo(setup_code(services().settings.secret_key))


@click.group("store")
def store_group() -> None:
    """Stores (points can be earned per store)."""


@store_group.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--kind", default="retail", show_default=True)
@click.option("--earn-points", type=int, default=None, help="Store-specific rate: points ...")
@click.option("--per-amount", type=int, default=None, help="... per this many đ.")
@with_appcontext
def store_add(code: str, name: str, kind: str, earn_points: int | None, per_amount: int | None) -> None:
    """Add a store, e.g. tichdiem store add Q1 "Quận 1" --earn-points 10 --per-amount 100000"""
    from models import Store

    with services().sessions() as session:
        session.add(Store(code=code, name=name, kind=kind, earn_points=earn_points, earn_unit_amount=per_amount))
        session.commit()
    click.echo(f"store {code} added")


@click.group("apikey")
def apikey_group() -> None:
    """POS API keys (one per store and POS system)."""


@apikey_group.command("create")
@click.option("--store", "store_code", required=True, help="The store's code.")
@click.option("--name", default="POS", show_default=True, help="What uses it, e.g. KiotViet.")
@with_appcontext
def apikey_create(store_code: str, name: str) -> None:
    """Create a key and print it once (only its hash is kept)."""
    from sqlalchemy import select

    from console.staff import create_api_key
    from models import Store

    with services().sessions() as session:
        store_id = session.scalar(select(Store.id).where(Store.code == store_code))
        if store_id is None:
            raise click.BadParameter(f"no store with code {store_code}", param_hint="--store")
        new = create_api_key(session, store_id=store_id, name=name, created_by_id=None)
        session.commit()
    click.echo(f"API key for {store_code} ({name}) — store it now, it is not shown again:\n{new.secret}")


@apikey_group.command("revoke")
@click.argument("prefix")
@with_appcontext
def apikey_revoke(prefix: str) -> None:
    """Revoke the key that starts with PREFIX (its first 11 characters, e.g. td_AbCdEfGh)."""
    from sqlalchemy import select

    from models import ApiKey, utcnow

    with services().sessions() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix[:11]))
        if key is None:
            raise click.ClickException("no such key")
        key.revoked_at = utcnow()
        session.commit()
    click.echo("revoked")


@click.group("broadcast")
def broadcast_group() -> None:
    """Broadcasts to a segment of members."""


@broadcast_group.command("create")
@click.option("--name", required=True)
@click.option("--text", required=True, help="May use {ten}, {diem}, {hang}.")
@click.option("--segment", default="{}", help='JSON, e.g. {"tier_ids": [2], "birthday_month": 5, "inactive_days": 30}')
@click.option("--at", "send_at", default=None, help="Local time dd/mm/yyyy HH:MM (default: now).")
@click.option("--not-promotional", is_flag=True, help="Care message: may go out at night.")
@with_appcontext
def broadcast_create(name: str, text: str, segment: str, send_at: str | None, not_promotional: bool) -> None:
    """Schedule a broadcast; prints its audience size first."""
    import json
    from datetime import datetime

    from loyalty.errors import InvalidSettings
    from loyalty.segments import Segment, audience_size
    from marketing.campaigns import create_broadcast

    svc = services()
    now = utcnow()
    try:
        parsed = Segment.from_dict(json.loads(segment))
        when = datetime.strptime(send_at, "%d/%m/%Y %H:%M").replace(tzinfo=svc.settings.tz) if send_at else now
    except (ValueError, InvalidSettings) as exc:
        raise click.BadParameter(str(exc)) from exc
    with svc.sessions() as session:
        click.echo(f"audience: {audience_size(session, parsed, now)} member(s)")
        broadcast = create_broadcast(
            session,
            name=name,
            text=text,
            segment=parsed,
            send_at=when,
            now=now,
            promotional=not not_promotional,
            created_by="cli",
        )
        session.commit()
        click.echo(f"broadcast {broadcast.id} scheduled for {when.astimezone(svc.settings.tz):%d/%m/%Y %H:%M}")


@broadcast_group.command("status")
@click.argument("broadcast_id", type=int)
@with_appcontext
def broadcast_status(broadcast_id: int) -> None:
    """Progress: counts by status and the reasons of skips and failures."""
    import json

    from marketing.campaigns import progress

    with services().sessions() as session:
        click.echo(json.dumps(progress(session, broadcast_id), ensure_ascii=False, indent=2))


@broadcast_group.command("pause")
@click.argument("broadcast_id", type=int)
@with_appcontext
def broadcast_pause(broadcast_id: int) -> None:
    """Stop sending; the rest waits."""
    from marketing.campaigns import pause

    with services().sessions() as session:
        pause(session, broadcast_id)
        session.commit()
    click.echo("paused")


@broadcast_group.command("resume")
@click.argument("broadcast_id", type=int)
@with_appcontext
def broadcast_resume(broadcast_id: int) -> None:
    """Continue a paused broadcast."""
    from marketing.campaigns import resume

    with services().sessions() as session:
        resume(session, broadcast_id)
        session.commit()
    click.echo("resumed")


@broadcast_group.command("cancel")
@click.argument("broadcast_id", type=int)
@with_appcontext
def broadcast_cancel(broadcast_id: int) -> None:
    """Stop for good; unsent rows are marked cancelled."""
    from marketing.campaigns import cancel

    with services().sessions() as session:
        cancel(session, broadcast_id, utcnow())
        session.commit()
    click.echo("cancelled")
