"""The scheduler's publish job in a loop, in processes the crash test kills (SIGKILL).

Usage: python publish_loop.py CONFIG.yaml  (DATABASE_URL and the account's token from the
environment). It imports everything once, then for each ``go`` line on stdin forks a child that
runs exactly what the worker's ``publish`` job runs, prints the child's pid and waits for it
to die (the test kills it). Forking keeps each restart cheap, so many kills fit in a short
test; the child opens its own database connections and HTTP sessions.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from monitor.clock import utcnow
from monitor.config import load_config
from monitor.jobs.poll import ConnectorPool
from monitor.posts import Checker, publish_due
from monitor.publishers import PublisherCache
from monitor.storage.db import make_engine, session_factory


def child(path: Path, checker: Checker) -> None:
    """Publish what is due, over and over, until killed."""
    sessions = session_factory(make_engine(os.environ["DATABASE_URL"]))
    publishers = PublisherCache(ConnectorPool(config_dir=path.parent).account_ref)
    while True:
        for outcome in publish_due(sessions, checker, publishers, utcnow(), limit=5):
            print(outcome.publication_id, outcome.state, flush=True)
        time.sleep(0.02)


def main() -> None:
    """Fork a publishing child per ``go`` line; report its pid; reap it."""
    path = Path(sys.argv[1])
    cfg = load_config(path).config
    checker = Checker.for_config(cfg)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        pid = os.fork()
        if pid == 0:
            try:
                child(path, checker)
            finally:
                os._exit(1)
        print(f"pid {pid}", flush=True)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
