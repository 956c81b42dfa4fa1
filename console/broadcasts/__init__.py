"""Broadcast pages: compose, preview, schedule, live progress, report."""
