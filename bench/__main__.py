"""Run every benchmark, each next to its baseline: `.venv/bin/python -m bench [--full]`.

Default sizes finish in a few minutes on 2 cores; --full uses the sizes the issues name (100,000 earns,
100,000 broadcast recipients, a console over 100,000 members and 1,000,000 ledger entries), which
take much longer. Needs the PostgreSQL and Redis servers.
"""

from __future__ import annotations

import subprocess
import sys

QUICK = [
    ["bench.ledger", "--ops", "5000", "--members", "200", "--history", "10000"],
    ["bench.webhook", "--requests", "2000", "--threads", "16"],
    ["bench.e2e", "--rate", "20", "--seconds", "15"],
    ["bench.burst", "--messages", "1000"],
    ["bench.broadcast", "--members", "3000", "--workers", "4"],
    ["bench.console", "--members", "20000", "--entries", "200000"],
    ["bench.member_import", "--rows", "20000"],
]
FULL = [
    ["bench.ledger", "--ops", "100000", "--members", "1000", "--history", "10000"],
    ["bench.webhook", "--requests", "10000", "--threads", "16"],
    ["bench.e2e", "--rate", "20", "--seconds", "60"],
    ["bench.broadcast", "--members", "100000", "--workers", "4"],
    ["bench.console", "--members", "100000", "--entries", "1000000"],
    ["bench.burst", "--messages", "3000"],
    ["bench.member_import", "--rows", "100000"],
    ["bench.faults"],
]


def main() -> int:
    runs = FULL if "--full" in sys.argv else QUICK
    failed = 0
    for module, *args in runs:
        print(f"\n$ python -m {module} {' '.join(args)}", flush=True)
        failed += subprocess.call([sys.executable, "-m", module, *args]) != 0
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
