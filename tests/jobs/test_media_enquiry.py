"""R11: a media enquiry is the principal's, not the general queue's; the channel sees only
that one arrived and who holds it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import select

from monitor.config_models import Config
from monitor.constants import AlertChannel, Category
from monitor.directory import load_directory
from monitor.jobs.assess import assess_pending
from monitor.jobs.poll import poll_account
from monitor.notify.case_view import case_message, email_text
from monitor.notify.messages import blocks_for, fallback_text
from monitor.policy import item_policy
from monitor.storage import tables as t
from tests.jobs.test_escalation_flow import HANDLE, KeywordAssessor, Verdict, the_case

ENQUIRY = "PRESS: I'm a reporter at the Echo, can the head comment on the closure?"


class PressAssessor(KeywordAssessor):
    WORDS: ClassVar[dict[str, Category]] = {
        **KeywordAssessor.WORDS,
        "PRESS": Category.MEDIA_ENQUIRY,
    }

    def assess(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Verdict]:
        return super().assess(texts, school_key=school_key)


def test_a_media_enquiry_is_given_to_the_principal_and_the_channel_sees_who_holds_it(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, ENQUIRY, now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess_pending(
        sessions,
        PressAssessor(),
        policy_for=lambda key: item_policy(config, key),
        directory=lambda s, at: load_directory(s, config.routing, now=at),
        now=now,
    )
    with sessions() as session:
        case = the_case(session, Category.MEDIA_ENQUIRY)
        holder = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
        assert holder is not None and holder.key == "aokafor"  # Oakfield's principal
        alerts = session.scalars(select(t.Alert).where(t.Alert.case_id == case.id)).all()
        principal = {a.target for a in alerts if a.payload.get("audience") == "full"}
        assert {"a.okafor@oakfield.example.sch.uk"} <= principal
        shared = [
            a
            for a in alerts
            if a.channel == AlertChannel.SLACK.value and not a.target.startswith("U")
        ]
        assert shared and all(a.payload.get("audience") == "restricted_note" for a in shared)
        # what the channel is shown: that one arrived and who holds it, never the enquiry
        note = case_message(session, case, show_content=False)
        shown = str(blocks_for(note)) + fallback_text(note)
        assert "A media enquiry has arrived. Ada Okafor holds it." in shown
        assert "reporter" not in shown and "closure" not in shown
        subject, body = email_text(session, case, kind="case_opened", show_content=False)
        assert "Ada Okafor holds it" in body and "reporter" not in body + subject
