"""tichdiem: a loyalty program inside a shop's Zalo Official Account.

This package is the wiring only: settings, database engine, queue, the Flask app factory and the CLI.
Lower layers import `tichdiem.config`; importing the factory lazily keeps that free of cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """See tichdiem.app.create_app (gunicorn: 'tichdiem:create_app()')."""
    from tichdiem.app import create_app as factory

    return factory(*args, **kwargs)


__all__ = ["create_app"]
