"""Slack button clicks: the clicking user is mapped to staff, roles checked, the action requested."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from monitor import posts
from monitor.actions import ActionRefused, ActionUnderWay, Actor, request_action
from monitor.constants import ActionKind
from monitor.directory import DirectoryFor
from monitor.notify.buttons import POST_BUTTON_ACTIONS, ButtonClick
from monitor.outbox import FROM_SLACK
from monitor.posts import Checker
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.cases import school_key_of
from monitor.web import links

BUTTON_ACTIONS: dict[str, ActionKind] = {
    "hide": ActionKind.HIDE,
    "unhide": ActionKind.UNHIDE,
    # HIDE where the platform cannot hide falls back to report and block (jobs.actions)
    "report_block": ActionKind.HIDE,
    "reply": ActionKind.REPLY,
    "mark_responded": ActionKind.MARK_RESPONDED,
    "assign_to_me": ActionKind.ASSIGN,
    "police_reported": ActionKind.POLICE_REPORTED,
    "police_not_needed": ActionKind.POLICE_NOT_NEEDED,
    "acknowledge": ActionKind.ACKNOWLEDGE,
    "escalate": ActionKind.ESCALATE,
    "not_abusive": ActionKind.DISMISS,
}
DONE_WORDS: dict[ActionKind, str] = {
    ActionKind.HIDE: "Hide requested",
    ActionKind.UNHIDE: "Unhide requested",
    ActionKind.REPLY: "Reply requested",
    ActionKind.MARK_RESPONDED: "Marked responded",
    ActionKind.ASSIGN: "Assigned",
    ActionKind.POLICE_REPORTED: "Police report recorded",
    ActionKind.POLICE_NOT_NEEDED: "No police report needed, recorded",
    ActionKind.ACKNOWLEDGE: "Acknowledged",
    ActionKind.ESCALATE: "Escalated",
    ActionKind.DISMISS: "Marked not abusive",
}


def button_handler(
    sessions: sessionmaker[Session],
    directory: DirectoryFor,
    clock: Callable[[], datetime],
    checker: Checker | None = None,
) -> Callable[[ButtonClick], str]:
    """A handler for the Socket Mode listener; returns the text posted in the message thread."""

    def handle(click: ButtonClick) -> str:
        if click.action in POST_BUTTON_ACTIONS:
            return _post_click(sessions, directory, clock, checker, click)
        kind = BUTTON_ACTIONS.get(click.action)
        if kind is None:
            return "That button is not known."
        now = clock()
        with transaction(sessions) as session:
            people = directory(session, now)
            person = people.by_slack_id(click.slack_user_id)
            case = session.get(t.Case, click.case_id)
            # someone past their leaving date is no longer in post, even if still marked active
            if person is None or not people.in_post(
                person, school_key_of(session, case) if case else None
            ):
                return "Your Slack account is not linked to an active member of staff, so nothing was done."
            if case is None:
                return f"Case {click.case_id} no longer exists."
            key = f"slack:{click.channel}:{click.message_ts}:{click.slack_user_id}:{click.action}"
            try:
                request_action(
                    session,
                    case,
                    kind,
                    actor=Actor.of(person, people),
                    now=now,
                    directory=people,
                    reason=FROM_SLACK,
                    params=_params(kind, person.key),
                    idempotency_key=key,
                )
            except ActionUnderWay as exc:
                return f"Nothing more to do: {exc}."
            except ActionRefused as exc:
                return f"{person.name} cannot do that: {exc}"
        return f"{DONE_WORDS[kind]} by {person.name}."

    return handle


def _params(kind: ActionKind, staff_key: str) -> dict[str, str] | None:
    if kind is ActionKind.HIDE:
        return {"reason": "Reported by the school's moderators"}
    if kind is ActionKind.ASSIGN:
        return {"staff": staff_key}  # Assign to me
    if kind is ActionKind.REPLY:
        return {"template": "acknowledge"}
    return None


def _post_click(
    sessions: sessionmaker[Session],
    directory: DirectoryFor,
    clock: Callable[[], datetime],
    checker: Checker | None,
    click: ButtonClick,
) -> str:
    """Approve or request changes to a scheduled post (R16), as ``monitor post`` would."""
    if checker is None:
        return "Posts cannot be approved from Slack here; use monitor post approve."
    now = clock()
    try:
        with transaction(sessions) as session:
            person = directory(session, now).by_slack_id(click.slack_user_id)
            if person is None:
                return "Your Slack account is not linked to a member of staff, so nothing was done."
            if click.action == "post_approve":
                posts.approve(
                    session,
                    checker,
                    click.case_id,
                    staff_id=person.key,
                    now=now,
                    expected_hash=click.content_hash,
                )
                return f"Post {click.case_id} approved by {person.name}."
            draft = session.get(t.PostDraft, click.case_id)
            if draft is not None and draft.content_hash != click.content_hash:
                return f"Post {click.case_id} changed since this message; nothing was done."
            posts.reject(
                session,
                checker.config,
                click.case_id,
                staff_id=person.key,
                reason="changes requested from Slack",
                now=now,
            )
            return f"Changes to post {click.case_id} requested by {person.name}."
    except posts.ChecksStop as exc:
        return f"Nothing was done: {exc}." + (
            _override_hint(checker, click.case_id) if exc.overridable else ""
        )
    except posts.PostError as exc:
        return f"Nothing was done: {exc}"


def _override_hint(checker: Checker, draft_id: int) -> str:
    """Where a warning may be overridden: a reason is needed, so not from a button."""
    url = links.post_url(links.base_url(checker.config), draft_id)
    where = (
        f"on the draft's page: {url}"
        if url
        else f"with `monitor post approve {draft_id} --override 'check@where=reason'`"
    )
    return (
        " A warning can be overridden only with a reason (it is audited), by those the "
        f"school allows, {where}"
    )
