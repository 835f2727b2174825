"""R7: which cases record evidence the moment they open, not only before an action (pure).

A safeguarding concern or a threat may be deleted by its author before anyone acts; the
record a DSL or the police will ask for is taken when the case opens. Nothing is done twice:
the evidence-first step before an action finds this record and uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.constants import Category

EVIDENCE_ON_OPEN: frozenset[Category] = frozenset({Category.SAFEGUARDING, Category.THREAT})


def evidence_on_open(categories: Iterable[Category]) -> bool:
    """True when a case with these categories records evidence as it opens."""
    return bool(EVIDENCE_ON_OPEN & frozenset(categories))
