"""One outbox delivery pass in its own process, so a test can kill it mid-delivery.

``python -m tests.notify.deliver_process --db URL --now ISO [--slack URL] [--smtp-port N]``
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from monitor.notify.email import EmailSender
from monitor.storage.db import make_engine, session_factory
from tests.notify.outbox_world import config_for_slack, deliver


def main(argv: list[str] | None = None) -> int:
    """Deliver what is due, as the worker's delivery job would."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--now", required=True)
    parser.add_argument("--slack")
    parser.add_argument("--smtp-port", type=int)
    args = parser.parse_args(argv)
    engine = make_engine(args.db)
    mail = (
        EmailSender(
            "127.0.0.1",
            args.smtp_port,
            None,
            None,
            "monitor@school.example",
            starttls=False,
            timeout=60.0,
        )
        if args.smtp_port
        else None
    )
    results = deliver(
        session_factory(engine),
        config_for_slack(),
        args.slack,
        mail,
        datetime.fromisoformat(args.now),
    )
    print(results, flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
