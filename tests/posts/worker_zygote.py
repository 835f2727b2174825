"""Start the real worker (``monitor worker --config PATH``) many times, cheaply, for the crash test.

Usage: python worker_zygote.py CONFIG.yaml (DATABASE_URL and the account's token from the
environment). It imports the command line once (torch and the rest take seconds on a busy
machine), then for each ``go`` line on stdin forks a child that runs the ``monitor worker``
command itself, the same entry point as the console script, prints the child's pid and waits
for it to die (the test kills it with SIGKILL). The child opens its own database connections,
leader lock, scheduler threads and HTTP sessions.
"""

from __future__ import annotations

import os
import sys

import detoxify  # noqa: F401 - the heavy imports, done once before forking
import transformers.models.bert.modeling_bert
import transformers.models.bert.tokenization_bert  # noqa: F401

import monitor.classify.toxicity
import monitor.service  # noqa: F401
from monitor.cli import app


def main() -> None:
    """Fork a worker per ``go`` line; report its pid; reap it."""
    path = sys.argv[1]
    for line in sys.stdin:
        if line.strip() != "go":
            break
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(2, 1)  # the worker's output goes to the log, not the pid pipe
                app(["worker", "--config", path])
            finally:
                os._exit(0)
        print(f"pid {pid}", flush=True)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
