"""The web app's one door to the policy in ``monitor/rules``: routes and templates ask here.

Nothing in ``monitor/web`` decides who may see or do what; each function below only gathers
the facts of a case and hands them to ``rules/`` (safeguarding content:
``rules.visibility.may_see_content``, the one decision every surface calls).
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.constants import ActionKind, CaseState, Category
from monitor.directory import Directory, Person
from monitor.rules import pages, visibility
from monitor.rules.pages import Page
from monitor.rules.permissions import refusal
from monitor.rules.visibility import ContentAccess, dsls_in_post, is_safeguarding, restricted_access


@dataclass(frozen=True)
class CaseFacts:
    """What the policy needs to know about a case."""

    category: Category
    restricted: bool
    state: CaseState
    school_key: str | None
    police_step: str | None = None


def serves(person: Person, school_key: str | None) -> bool:
    """Whether ``person`` works for the case's school (trust-wide staff serve every school)."""
    return person.serves(school_key)


def safeguarding(facts: CaseFacts) -> bool:
    """Whether the case's content is for the DSL and deputies only (R6)."""
    return is_safeguarding(category=facts.category, restricted=facts.restricted)


def may_see_content(directory: Directory, person: Person, facts: CaseFacts) -> bool:
    """Whether ``person`` may read the case's content: comment, author, scores, evidence."""
    if not serves(person, facts.school_key) or not directory.in_post(person, facts.school_key):
        return False
    return visibility.may_see_content(
        directory,
        person,
        school_key=facts.school_key,
        category=facts.category,
        restricted=facts.restricted,
    ).allowed


def action_refusal(
    directory: Directory, person: Person, facts: CaseFacts, action: ActionKind
) -> str | None:
    """Why ``person`` may not ask for ``action`` on the case; None when they may."""
    stand_in = (
        facts.restricted
        and restricted_access(directory, person, facts.school_key) is ContentAccess.STAND_IN
    )
    return refusal(
        directory.effective_roles(person),
        action,
        category=facts.category,
        restricted=facts.restricted,
        state=facts.state,
        serves_school=serves(person, facts.school_key),
        police_step=facts.police_step,
        stand_in=stand_in,
    )


def evidence_refusal(directory: Directory, person: Person, facts: CaseFacts) -> str | None:
    """Why ``person`` may not export the case's evidence (pack or bundle); None when they may."""
    from monitor.exports.evidence import evidence_refusal as export_rule

    return export_rule(
        directory,
        person,
        directory.effective_roles(person),
        school_key=facts.school_key,
        category=facts.category,
        restricted=facts.restricted,
    )


def subject_access_refusal(directory: Directory, person: Person) -> str | None:
    """Why ``person`` may not answer a subject-access request; None when they may."""
    from monitor.constants import ExportKind
    from monitor.rules.permissions import export_refusal

    return export_refusal(directory.effective_roles(person), ExportKind.SUBJECT_ACCESS)


def content_holders(directory: Directory, school_key: str | None) -> list[Person]:
    """Who may see a safeguarding case's content: the school's DSLs and deputies in post."""
    return dsls_in_post(directory, school_key)


def page_refusal(
    directory: Directory, person: Person, page: Page, *, school_key: str | None = None
) -> str | None:
    """Why ``person`` may not open an overview page (of ``school_key``); None when they may."""
    return pages.page_refusal(
        directory.effective_roles(person),
        page,
        trust_wide=not person.schools,
        serves_school=school_key is None or person.serves(school_key),
    )
