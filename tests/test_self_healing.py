"""Self-healing (issue 15): once a request has gone out, a read timeout is as uncertain as a dead worker."""

from __future__ import annotations

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from urllib3.exceptions import NewConnectionError

from models import OutboxMessage
from tests.helpers import CS_URL, ZaloFake, post_event, run_jobs, text_event


def _refused() -> requests.ConnectionError:
    return requests.ConnectionError(NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "why"),
    [
        (requests.ReadTimeout("read timed out"), "timeout after sending"),
        (requests.ConnectionError("Connection aborted: RemoteDisconnected"), "connection lost after sending"),
    ],
)
def test_an_answer_lost_after_sending_marks_the_reply_unknown_and_never_resends(
    app: Flask, zalo: ZaloFake, session: Session, failure: Exception, why: str
) -> None:
    zalo.mock.add("POST", CS_URL, body=failure)
    zalo.accept_messages("m-ok")
    post_event(app.test_client(), text_event("trợ giúp", "m-1"))
    run_jobs(app)
    run_jobs(app, include_scheduled=True)
    assert len(zalo.calls_to(CS_URL)) == 1  # Zalo may have it: not sent again
    (row,) = session.scalars(select(OutboxMessage)).all()
    assert row.status == "unknown" and why in (row.last_error or "")


@pytest.mark.parametrize("first", ["refused", "504"])
def test_only_what_certainly_did_not_reach_zalo_is_retried(
    app: Flask, zalo: ZaloFake, session: Session, first: str
) -> None:
    if first == "refused":
        zalo.mock.add("POST", CS_URL, body=_refused())
    else:
        zalo.mock.add("POST", CS_URL, status=504, json={"error": -1})
    zalo.accept_messages("m-ok")
    post_event(app.test_client(), text_event("trợ giúp", "m-2"))
    run_jobs(app)
    run_jobs(app, include_scheduled=True)
    (row,) = session.scalars(select(OutboxMessage)).all()
    if first == "refused":  # no connection was made: safe to try again (refused, then delivered)
        assert (row.status, row.attempts, len(zalo.calls_to(CS_URL))) == ("sent", 2, 2)
    else:  # the gateway gave up waiting for Zalo, which may have delivered it
        assert row.status == "unknown" and len(zalo.calls_to(CS_URL)) == 1
