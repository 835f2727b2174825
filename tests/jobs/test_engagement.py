"""R15: engagement counts are refreshed at each verification and shown on the case."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from monitor.actions import POLICY, request_action
from monitor.config_models import Config
from monitor.constants import ActionKind, Category
from monitor.directory import load_directory
from monitor.display import engagement_text
from monitor.jobs.actions import run_pending_actions
from monitor.jobs.poll import poll_account
from monitor.jobs.verify import run_removal_checks
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.jobs.test_escalation_flow import HANDLE, assess, the_case


@pytest.mark.parametrize(
    ("engagement", "text"),
    [
        (
            {"likes": 3, "reposts": 1, "replies": 2, "quotes": 0},
            "3 likes, 1 repost, 0 quotes, 2 replies",
        ),
        ({"favourites": 1, "reblogs": 4, "replies": 1}, "1 like, 4 reposts, 1 reply"),
        ({"score": 12, "num_comments": 5}, "5 replies, 12 points"),
        ({}, None),
        ({"likes": True, "other": 3}, None),  # not counts this knows
    ],
)
def test_engagement_in_words(engagement: dict[str, Any], text: str | None) -> None:
    assert engagement_text(engagement) == text


def test_each_verification_refreshes_the_counts(world: Any, config: Config, now: datetime) -> None:
    sessions, platform, pool = world
    item = platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with transaction(sessions) as session:
        request_action(
            session,
            the_case(session, Category.ABUSIVE),
            ActionKind.REPORT,  # still visible: two checks, each refreshing the counts
            actor=POLICY,
            now=now,
            directory=load_directory(session, config.routing, now=now),
        )
    directory = lambda s, at: load_directory(s, config.routing, now=at)  # noqa: E731
    run_pending_actions(sessions, pool, now=now, directory=directory)
    seen = []
    with sessions() as session:
        due = sorted(session.scalars(select(t.RemovalCheck.due_at)).all())
        assert len(due) >= 2
    for at, likes in zip(due, (4, 9), strict=False):
        platform.engage(item.platform_id, likes=likes, reposts=likes // 2, replies=1)
        run_removal_checks(sessions, pool, now=at, directory=directory)
        with sessions() as session:
            case = the_case(session, Category.ABUSIVE)
            stored = session.get(t.Item, case.item_id)
            assert stored is not None
            seen.append((stored.engagement, case.details.get("engagement_at")))
    assert seen[0][0] == {"likes": 4, "reposts": 2, "replies": 1}
    assert seen[1][0] == {"likes": 9, "reposts": 4, "replies": 1}
    assert seen[0][1] != seen[1][1]
    assert now + timedelta(days=2) > datetime.fromisoformat(str(seen[1][1]))
