"""The accounts-and-compliance page and the audit log page, by role."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from starlette.testclient import TestClient

from monitor import cases
from monitor.constants import Category, Severity
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.web.conftest import Trust, audit_actions, csrf_of

Client = Callable[[str], TestClient]


def test_overview_pages_are_refused_to_moderators(trust: Trust, client_for: Client) -> None:
    client = client_for("morgan")
    for path in ("/accounts", "/audit", "/audit?verify=1"):
        page = client.get(path)
        assert page.status_code == 403 and "needs one of these roles" in page.text, path


def test_accounts_page_shows_the_schools_served(trust: Trust, client_for: Client) -> None:
    page = client_for("sam").get("/accounts")
    assert page.status_code == 200
    assert "oak-bsky" in page.text and "elm-masto" not in page.text
    assert "Dana Safeguarding (DSL), Morgan Moderator" in page.text
    assert "two or more in post" in page.text and "social@oak.test" in page.text
    assert "never polled" in page.text
    everything = client_for("ivy").get("/accounts").text
    assert "oak-bsky" in everything and "elm-masto" in everything
    assert "Elmo Moderator (" in everything  # elm-masto has one administrator: a problem
    elm = everything.split("<h2>elm-masto", 1)[1].split("<h2>", 1)[0]
    assert "Elmo Moderator (" in elm and "two or more in post" not in elm


def open_two_admins_problem(trust: Trust) -> int:
    """The standing two-administrator problem of elm-masto (one administrator), as a case."""
    with transaction(trust.sessions) as session:
        elm = session.scalars(select(t.Account).where(t.Account.key == "elm-masto")).one()
        case, _ = cases.open_case(
            session,
            dedupe_key=f"two_admins:account:{elm.id}",
            category=Category.TWO_ADMINS,
            severity=Severity.MEDIUM,
            title="elm-masto has one administrator",
            now=trust.clock(),
            account_id=elm.id,
            school_id=elm.school_id,
        )
        return case.id


def test_accounts_page_lists_open_problems_with_what_fixes_them(
    trust: Trust, client_for: Client
) -> None:
    problem = open_two_admins_problem(trust)
    page = client_for("ivy").get("/accounts").text
    elm = page.split("<h2>elm-masto", 1)[1].split("<h2>", 1)[0]
    oak = page.split("<h2>oak-bsky", 1)[1]
    assert f'<a href="/cases/{problem}">#{problem} two_admins</a>' in elm
    assert "name a second administrator in accounts[].admins and run `monitor sync`" in elm
    # a comment's case is not a standing problem of its account
    assert "Open problems" not in oak
    assert f"#{trust.ids['abusive_case']}" not in oak
    # a school's leader sees only their own school's accounts, and so none of elm's problems
    assert f"/cases/{problem}" not in client_for("sam").get("/accounts").text


def test_audit_log_is_trust_wide_only(trust: Trust, client_for: Client) -> None:
    page = client_for("sam").get("/audit")
    assert page.status_code == 403 and "whole trust" in page.text


def test_audit_log_verifies_the_chain_and_withholds_safeguarding_reasons(
    trust: Trust, client_for: Client
) -> None:
    with transaction(trust.sessions) as session:
        case = session.get(t.Case, trust.ids["safeguarding_case"])
        assert case is not None
        cases.log_event(
            session, case, "case.note", actor="dana", now=trust.clock(), reason="secret-reason"
        )
    client = client_for("ivy")
    page = client.get("/audit?verify=1").text
    assert "Chain verified" in page and "no breaks" in page
    assert "secret-reason" not in page and "(withheld: safeguarding case)" in page
    assert "Dana Safeguarding (DSL)" in page  # names, not ids
    assert ("ivy", "web.audit_viewed", "audit") in audit_actions(trust.sessions)
    with transaction(trust.sessions) as session:
        first = session.scalars(select(t.AuditEvent).order_by(t.AuditEvent.seq)).first()
        assert first is not None
        first.reason = "altered"
    broken = client.get("/audit?verify=1").text
    assert "The chain is broken" in broken and "event 1: content does not match" in broken


def test_digest_preview_for_senior_leaders_of_their_school(
    trust: Trust, client_for: Client
) -> None:
    sam = client_for("sam")
    page = sam.get("/digest?school=oak")
    assert page.status_code == 200 and "Oak School" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp  # no script can run
    assert sam.get("/digest?school=elm").status_code == 403
    assert sam.get("/digest").status_code == 403  # the trust's digest: trust-wide leaders only
    assert sam.get("/digest?school=oak&week=bad").status_code == 400
    assert client_for("morgan").get("/digest?school=oak").status_code == 403


def test_staff_page_and_handover_preview_then_confirm(trust: Trust, client_for: Client) -> None:
    moderator = client_for("morgan")
    listing = moderator.get("/staff").text
    assert "Lee Leaver" in listing and "Record leaving" not in listing
    assert "Elmo Moderator" not in listing  # another school's staff
    assert moderator.get("/staff/lee/leave").status_code == 403
    sam = client_for("sam")
    assert "Record leaving" in sam.get("/staff").text
    assert sam.get("/staff/elmo/leave").status_code == 403  # not Sam's school
    # Morgan administers oak-bsky with Dana: leaving without a successor leaves one
    refused = sam.get("/staff/morgan/leave?on=2026-12-18").text
    assert "oak-bsky: refused:" in refused and "Confirm:" not in refused
    preview = sam.get("/staff/morgan/leave?on=2026-12-18&successor=sam").text
    assert "handover: Dana Safeguarding (DSL) (Sam Senior added)" in preview
    token = csrf_of(preview)
    assert sam.post("/staff/morgan/leave", data={"on": "2026-12-18"}).status_code == 403
    done = sam.post(
        "/staff/morgan/leave", data={"csrf": token, "on": "2026-12-18", "successor": "sam"}
    )
    assert done.status_code == 200 and "morgan leaves on 2026-12-18" in done.text
    with trust.sessions() as session:
        staff = session.scalars(select(t.Staff).where(t.Staff.key == "morgan")).one()
        assert str(staff.leaving_on) == "2026-12-18" and staff.successor_key == "sam"
    assert ("sam", "staff.leaving_scheduled", "staff:morgan") in audit_actions(trust.sessions)
