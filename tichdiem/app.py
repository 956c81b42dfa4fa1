"""The Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response, abort, appcontext_pushed, current_app, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from bot import BotConfig, build_bot
from console.forms import IdConverter
from jobs.cards import CardPublisher
from jobs.context import Services, make_current, reset_current
from jobs.proactive import ProactiveSender
from loyalty.shop import ShopName
from tichdiem.cli import register_cli
from tichdiem.config import PROJECT_ROOT, Settings, load_settings
from tichdiem.db import make_engine, make_session_factory
from tichdiem.extensions import EXTENSION_KEY, close_session
from tichdiem.queue import make_queue, make_redis
from webhooks.views import ZaloWebhook
from zalo.client import ZaloClient
from zalo.tokens import DatabaseTokenStore, TokenPair

log = logging.getLogger(__name__)
SESSION_LIFETIME = timedelta(hours=12)


def create_app(
    settings: Settings | None = None, config: Mapping[str, Any] | None = None, *, check_secure: bool = True
) -> Flask:
    """Build the app. `settings` defaults to the environment; `config` overrides Flask config (tests).

    Raises InsecureSettings (with what to set) unless the settings are safe to serve: only the CLI builds an
    app without the check, and its serving commands check before they start.
    """
    settings = settings or load_settings()
    if check_secure:
        settings.check_secure()
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        instance_path=str(PROJECT_ROOT / "instance"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        # A counter PC stays logged in through a shift; every request slides the 12 hours on.
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        SESSION_REFRESH_EACH_REQUEST=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
    )
    if config:
        app.config.from_mapping(config)
    # Zalo's deliveries are answered in front of Flask (webhooks.views), inside ProxyFix so their logs name the
    # real client.
    app.wsgi_app = ZaloWebhook(app.wsgi_app, app)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        # Only as many X-Forwarded-* hops as there are proxies of ours: a client cannot pick its own address.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    app.session_interface = _NoCookieSessionForMachines()
    app.before_request(_refuse_nul)
    app.after_request(_security_headers)
    app.url_map.converters["int"] = IdConverter  # before the blueprints' rules are built

    services = build_services(settings)
    app.extensions[EXTENSION_KEY] = services
    appcontext_pushed.connect(_make_current, app)
    app.teardown_appcontext(close_session)
    app.teardown_appcontext(_forget_current)
    _register_blueprints(app)
    register_cli(app)
    return app


class _NoCookieSessionForMachines(SecureCookieSessionInterface):
    """The POS API authenticates every request by its key, never by a cookie: it gets no session to open or save
    (verifying and re-signing the console's cookie was ~5% of a machine request's CPU under load, issue 16; Zalo's
    webhook does not reach Flask at all, webhooks.views)."""

    MACHINE_PATHS = ("/api/",)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(self.MACHINE_PATHS):
            return self.make_null_session(app)
        return super().open_session(app, request)


def _refuse_nul() -> None:
    """A NUL in an address, a query or a form field is never text a person typed, and PostgreSQL refuses it
    in any string: a clear 400 here instead of a 500 from whatever query it reaches. (The API reads its own bodies
    and checks them; the webhook never reaches Flask.)"""
    if request.blueprint == "api" and "\x00" not in request.path:
        return
    values = [request.path, *request.args.values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += request.form.values()
    if any("\x00" in value for value in values):
        abort(400)


def _security_headers(response: Response) -> Response:
    """On every answer: no MIME sniffing, no full URLs (claim codes, next=) leaked to other sites, and no
    framing by other sites (clickjacking the counter's buttons). The demo frames its own pages side by side."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    frame = "'self'" if _settings().emulator else "'none'"
    response.headers.setdefault("Content-Security-Policy", f"frame-ancestors {frame}")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN" if _settings().emulator else "DENY")
    return response


def _settings() -> Settings:
    services: Services = current_app.extensions[EXTENSION_KEY]
    return services.settings


def _make_current(app: Flask, **_: Any) -> None:
    """Inside the app's context (a request, a CLI command, a test's `with app.app_context()`), jobs' code
    finds this app's Services through jobs.context.current_services()."""
    g._services_token = make_current(app.extensions[EXTENSION_KEY])


def _forget_current(_exc: BaseException | None = None) -> None:
    token = g.pop("_services_token", None)
    if token is not None:
        reset_current(token)


def build_services(settings: Settings, redis: Redis | None = None) -> Services:
    """The one wiring object: what a request and a job need, built once per app or worker process."""
    engine = make_engine(settings.database_url)
    redis = redis or make_redis(settings.redis_url)
    queue = make_queue(redis)
    sessions = make_session_factory(engine, queue)
    zalo = make_zalo_client(settings, sessions)
    shop_name = ShopName(sessions, settings.shop_name)
    config = BotConfig(
        shop_name=settings.shop_name,
        name_source=shop_name,
        timezone=settings.timezone,
        oa_id=settings.zalo_oa_id,
        logo_url=settings.logo_url,
        privacy_url=f"{settings.public_url.rstrip('/')}/privacy",
        invite_url=f"{settings.public_url.rstrip('/')}/r/",
    )
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        queue=queue,
        zalo=zalo,
        bot=build_bot(config),
        cards=CardPublisher(sessions, zalo, secret=settings.secret_key, shop_name=shop_name),
        proactive=ProactiveSender(sessions, zalo, settings.tz),
        shop_name=shop_name,
    )


def make_zalo_client(settings: Settings, sessions: sessionmaker[Session]) -> ZaloClient:
    seed = TokenPair(settings.zalo_access_token, settings.zalo_refresh_token)
    return ZaloClient(
        tokens=DatabaseTokenStore(sessions, seed),
        app_id=settings.zalo_app_id,
        app_secret=settings.zalo_app_secret,
        openapi_url=settings.zalo_openapi_url,
        oauth_url=settings.zalo_oauth_url,
        zns_url=settings.zalo_zns_url,
    )


def _register_blueprints(app: Flask) -> None:
    from flask_wtf.csrf import CSRFProtect

    from console.admin.catalog import bp as catalog_bp
    from console.admin.charity import bp as causes_bp
    from console.admin.connect import bp as connect_bp
    from console.admin.privacy import bp as privacy_bp
    from console.admin.results import bp as results_bp
    from console.admin.stamps import bp as stamp_cards_bp
    from console.admin.stores import bp as stores_bp
    from console.admin.templates import bp as templates_bp
    from console.admin.views import bp as admin_bp
    from console.admin.vip import bp as vip_plans_bp
    from console.api.views import bp as api_bp
    from console.auth import bp as auth_bp
    from console.broadcasts.views import bp as broadcasts_bp
    from console.counter.public import bp as public_bp
    from console.counter.views import bp as counter_bp
    from console.errors import register as register_error_pages
    from console.setup import bp as setup_bp
    from console.team.views import bp as team_bp
    from console.templating import register as register_templating
    from console.transfer.views import bp as transfer_bp
    from tichdiem.health import bp as health_bp

    register_templating(app)
    register_error_pages(app)
    csrf = CSRFProtect(app)
    csrf.exempt(api_bp)  # authenticated by an API key header, never by cookies
    blueprints = (
        health_bp,
        auth_bp,
        setup_bp,
        counter_bp,
        public_bp,
        api_bp,
        admin_bp,
        templates_bp,
        connect_bp,
        stores_bp,
        privacy_bp,
        broadcasts_bp,
        catalog_bp,
        stamp_cards_bp,
        vip_plans_bp,
        causes_bp,
        results_bp,
        team_bp,
        transfer_bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    if app.extensions[EXTENSION_KEY].settings.emulator:
        _register_emulator(app, csrf)


def _register_emulator(app: Flask, csrf: Any) -> None:
    """The local Zalo emulator: only when enabled, so production serves none of it."""
    from sqlalchemy import select

    from emulator.fake_zalo import bp as fake_zalo_bp
    from emulator.state import EmulatorState
    from emulator.views import add_demo_customers
    from emulator.views import bp as emulator_bp
    from models import OaToken

    services: Services = app.extensions[EXTENSION_KEY]
    state = EmulatorState(
        access_token=services.settings.zalo_access_token, refresh_token=services.settings.zalo_refresh_token
    )
    try:
        with services.sessions() as session:  # after a restart, the pair the app already rotated to
            row = session.scalar(select(OaToken).order_by(OaToken.id).limit(1))
            if row is not None:
                state.access_token, state.refresh_token = row.access_token, row.refresh_token
    except Exception:  # noqa: BLE001 - no tables yet: `tichdiem run` migrates right after
        pass
    app.extensions["tichdiem.emulator"] = state
    for blueprint in (fake_zalo_bp, emulator_bp):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
    if services.settings.demo:
        with app.app_context():
            add_demo_customers(established=True)
