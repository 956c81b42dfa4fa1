"""tichdiem: a loyalty program inside a shop's Zalo Official Account.

This package is the wiring only: settings, database engine, queue, the Flask app factory and the CLI.
"""

from tichdiem.app import create_app

__all__ = ["create_app"]
