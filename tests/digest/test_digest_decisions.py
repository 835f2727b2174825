"""The digest opens with "Needs your decision": what waits on a head, named, before the figures."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.digest.figures import compute
from monitor.digest.render import render
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.digest import seed_digest as sd

S = sd.START
BASE = "https://monitor.example.org"


def _seed(sessions: sessionmaker[Session]) -> dict[str, int]:
    """One case of each kind that needs a decision, and one of each that does not."""
    secret = sd.SeedItem(
        "oak-bsky", S, S, sd.SG_TEXT, sd.SG_AUTHOR, author_name=sd.SG_AUTHOR_NAME, flagged=True
    )
    cases = {
        "missed": sd.SeedCase(
            "needs_response", "escalated", S, "oak-bsky", due_at=S + timedelta(days=1)
        ),
        "answered": sd.SeedCase(
            "needs_response",
            "responded",
            S,
            "oak-bsky",
            due_at=S + timedelta(days=1),
            responded_at=S + timedelta(hours=2),
        ),
        "not_yet_due": sd.SeedCase(
            "needs_response", "new", sd.END - timedelta(hours=1), "oak-bsky", due_at=sd.NOW
        ),
        "missed_safeguarding": sd.SeedCase(
            "needs_response",
            "escalated",
            S,
            "oak-bsky",
            item=secret,
            due_at=S + timedelta(days=2),
            restricted=True,
            title=f"Safeguarding: {sd.SG_TEXT}",
        ),
        "media": sd.SeedCase(
            "media_enquiry", "new", S + timedelta(days=3), "river-bsky", due_at=sd.NOW
        ),
        "media_answered": sd.SeedCase(
            "media_enquiry",
            "responded",
            S + timedelta(days=3),
            "river-bsky",
            due_at=sd.NOW,
            responded_at=S + timedelta(days=3, hours=1),
        ),
        "admins": sd.SeedCase(
            "two_admins", "new", S - timedelta(days=2), "oak-masto", details={"admins": ["comms1"]}
        ),
        "visible": sd.SeedCase("removal_overdue", "new", S + timedelta(days=4), "oak-bsky"),
        "visible_fixed": sd.SeedCase(
            "removal_overdue",
            "closed",
            S + timedelta(days=1),
            "oak-bsky",
            closed_at=S + timedelta(days=1, hours=1),
        ),
        "threat": sd.SeedCase("threat", "acknowledged", S + timedelta(days=5), "river-bsky"),
        "threat_reported": sd.SeedCase("threat", "actioned", S + timedelta(days=5), "river-bsky"),
    }
    staff = [
        sd.SeedStaffChange("leaver-soon", leaving_on=date(2026, 12, 10)),  # no successor
        sd.SeedStaffChange("leaver-river", leaving_on=date(2026, 12, 1), successor="comms3"),
    ]
    sd.insert(sessions, sd.make_config(), sd.Seed([secret], list(cases.values()), staff, {}, {}))
    with transaction(sessions) as session:
        comms1 = session.scalars(select(t.Staff).where(t.Staff.key == "comms1")).one()
        session.get_one(t.Case, cases["missed"].db_id).assignee_id = comms1.id
        session.get_one(t.Case, cases["missed_safeguarding"].db_id).assignee_id = comms1.id
        session.get_one(t.Case, cases["threat"].db_id).police_step = "pending"
        session.get_one(t.Case, cases["threat_reported"].db_id).police_step = "reported"
    return {name: case.db_id for name, case in cases.items()}


def test_the_digest_starts_with_what_needs_a_decision(sessions: sessionmaker[Session]) -> None:
    ids = _seed(sessions)
    with sessions() as session:
        trust = compute(session, week=sd.WEEK, scope="trust", now=sd.NOW)
        oak = compute(session, week=sd.WEEK, scope="oak", now=sd.NOW)
    d = trust.decisions
    assert [c.case_id for c in d.missed_replies] == [ids["missed"], ids["missed_safeguarding"]]
    assert [c.case_id for c in d.media_waiting] == [ids["media"]]
    assert [p.account for p in d.two_admins] == ["oak-masto"]
    assert [c.case_id for c in d.still_visible] == [ids["visible"]]
    assert [(p.name, p.successor) for p in d.leavers_without_successor] == [("Lee Soon", None)]
    assert [c.case_id for c in d.police_pending] == [ids["threat"]]
    assert d.count == 7
    # a school's digest holds only its own school's decisions (and trust-wide leavers)
    assert oak.decisions.media_waiting == () and oak.decisions.police_pending == ()
    assert len(oak.decisions.missed_replies) == 2

    email = render(trust, organisation="Northfield", case_base=BASE)
    text = email.text
    decide = text.index("NEEDS YOUR DECISION")
    assert decide < text.index("Items seen") < text.index("SAFEGUARDING")
    head = text[decide : text.index("THE WEEK IN FIGURES")]
    titles = [
        "Replies missed (2)",
        "Media enquiries waiting (1)",
        "Accounts below two administrators (1)",
        "Content still visible past its target (1)",
        "Leavers without a successor (1)",
        "Police decisions pending (1)",
    ]
    assert [head.index(title) for title in titles] == sorted(head.index(x) for x in titles)
    # replies missed are named: the case, the account, when it was due, who holds it
    assert (
        f"Case {ids['missed']}: a query on <img src=x onerror=alert(1)>&amp;"
        ".bsky.social (Bluesky, oak), due Tue 17 Nov 00:00, unanswered; "
        f"held by Cam Comms <{BASE}/cases/{ids['missed']}>"
    ) in head
    # the safeguarding one is only said to exist: no account, holder, title or content
    line = next(x for x in head.splitlines() if f"Case {ids['missed_safeguarding']}:" in x)
    assert "a safeguarding matter (the DSL has the details)" in line
    assert "bsky" not in line and "Cam Comms" not in line
    assert "Lee Soon leaves on Thu 10 Dec 2026: name a successor" in head
    assert "Rio Leaver" not in head  # has a successor
    assert "oak@mastodon.example (Mastodon, oak) has 1 active administrator" in head
    for part in (email.html, email.text, email.subject):
        for secret in (sd.SG_TEXT, "ZEBRA-SAFEGUARD", sd.SG_AUTHOR, sd.SG_AUTHOR_NAME):
            assert secret not in part
    # the HTML too: the decisions before the figures, each case linked
    html = email.html
    assert html.index("Needs your decision") < html.index("The week in figures")
    assert html.index("The week in figures") < html.index(">items seen<")
    assert f'href="{BASE}/cases/{ids["missed"]}"' in html


def test_a_quiet_week_says_nothing_needs_a_decision(sessions: sessionmaker[Session]) -> None:
    sd.insert(sessions, sd.make_config(), sd.Seed([], [], [], {}, {}))
    with sessions() as session:
        figures = compute(session, week=sd.WEEK, scope="river", now=sd.NOW)
    assert figures.decisions.count == 0
    email = render(figures, organisation="Northfield")
    assert "NEEDS YOUR DECISION\n  Nothing needs your decision this week." in email.text
    assert "Nothing needs your decision this week." in email.html


def test_the_inbox_preview_line_leads_with_the_decisions(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    with sessions() as session:
        figures = compute(session, week=sd.WEEK, scope="trust", now=sd.NOW)
    html = render(figures, organisation="Northfield").html
    body = html[html.index("<body") :]
    first = body[body.index(">") + 1 :].lstrip()
    # the first thing in the body: hidden everywhere (mso-hide for Outlook), shown as the preview
    assert first.startswith('<div style="display:none;')
    assert "mso-hide:all" in first.split(">")[0]
    preview = first[first.index(">") + 1 : first.index("</div>")]
    assert preview.startswith(
        "Needs your decision: 2 replies missed, 1 media enquiry waiting, "
        "1 account below two admins, 1 item still visible, 1 leaver without a successor, "
        "1 police decision pending. "
    )
    assert "items seen" in preview and "flagged" in preview
