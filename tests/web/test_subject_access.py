"""The subject-access report in the web: a cover letter and the records, printable, by the
subject export's rule, audited, and never a sign that a safeguarding record exists."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from starlette.testclient import TestClient

from monitor.storage import tables as t
from tests.web.conftest import Trust, audit_actions, csrf_of

Client = Callable[[str], TestClient]


def _report(client: TestClient, handle: str) -> object:
    form = client.get("/subject-access")
    assert form.status_code == 200, form.text
    return client.post("/subject-access", data={"csrf": csrf_of(form.text), "handle": handle})


def test_report_has_a_cover_letter_and_the_records_inert(trust: Trust, client_for: Client) -> None:
    response = _report(client_for("sam"), "Troll.bsky.social")
    assert response.status_code == 200  # type: ignore[attr-defined]
    page = response.text  # type: ignore[attr-defined]
    # the letter: purposes, retention (from the config), the automated assessment
    assert "Why we hold it" in page and "moderating replies" in page
    assert "comments that raised no concern: 90 days" in page
    assert "evidence records: 7 years" in page
    assert "Detoxify, original" in page and "no decision about you is made" in page
    # the records, escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "Posts and comments (1)" in page and "Cases (1)" in page
    assert "https://bsky.app/post/reply1" in page
    with trust.sessions() as session:
        event = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "records.subject_exported")
        ).one()
    assert event.actor == "sam" and event.details["os_user"] == "web"
    assert "troll" not in str(event.details).lower()  # the audit log keeps no handle


def test_report_never_reveals_a_safeguarding_record(trust: Trust, client_for: Client) -> None:
    # a senior leader may answer the request but may not know of the disclosure
    page = _report(client_for("sam"), "child.bsky.social").text  # type: ignore[attr-defined]
    assert "secret-disclosure" not in page and "secret-title" not in page
    assert "Left out of this report" not in page and "withheld" not in page.lower()
    assert "Posts and comments (0)" in page and "Cases (0)" in page
    # the DSL gets the same report, and a note for them alone (not printed) of what was left out
    dsl = _report(client_for("dana"), "child.bsky.social").text  # type: ignore[attr-defined]
    assert "secret-disclosure" not in dsl and "Cases (0)" in dsl
    note_start = dsl.index('<aside class="staff-only"')
    note = dsl[note_start : dsl.index("</aside>", note_start)]
    assert "Left out of this report" in note and "1 cases" in note and "1 items" in note
    assert "Left out" not in dsl[dsl.index("</aside>") :]


def test_only_the_roles_the_rule_names_may_make_it(trust: Trust, client_for: Client) -> None:
    moderator = client_for("morgan")
    assert moderator.get("/subject-access").status_code == 403
    token = csrf_of(moderator.get("/queue").text)
    refused = moderator.post("/subject-access", data={"csrf": token, "handle": "troll.bsky.social"})
    assert refused.status_code == 403 and "needs one of these roles" in refused.text
    assert "onerror" not in refused.text
    actions = audit_actions(trust.sessions)
    assert ("morgan", "records.subject_export_refused", "subject-access") in actions
    assert not any(a == "records.subject_exported" for _, a, _ in actions)


def test_report_needs_the_csrf_token(trust: Trust, client_for: Client) -> None:
    response = client_for("sam").post("/subject-access", data={"handle": "troll.bsky.social"})
    assert response.status_code == 403 and "Form expired" in response.text
