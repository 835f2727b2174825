"""R9: a safeguarding concern that also threatens people or the school is a threat too (pure).

The rules file weapons and violence as safeguarding (SG-RISK-VIOLENCE): a child carrying a
knife is first a concern for that child. When the same words threaten someone ("I'm bringing
a knife to school tomorrow", "he said he'd stab him"), the threat category is raised as well,
so the case gets its police step and the threat's routing, while staying restricted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from monitor.constants import Category

# Safeguarding rules about weapons and violence: the ones that can also be a threat.
VIOLENT_SAFEGUARDING_RULES: frozenset[str] = frozenset({"SG-RISK-VIOLENCE"})

_WEAPON = r"(knife|knives|blade|machete|gun|pistol|weapon|acid|bat)"
_HARM = r"(stab|shank|shoot|kill|batter|knife|glass|slash|hurt|beat up|jump)"
_WILL = (
    r"(i|im|i am|ill|i will|we|were|well|we will|he|hes|hed|he will|he would|she|shes|shed"
    r"|she will|she would|they|theyre|theyll|theyd|they will|they would)"
    r" ?(am|is|are|will|would|wil|gonna|going to|gunna)?"
)
# Words that turn a report of violence into a threat against people or the school.
THREAT_SIGNALS: tuple[re.Pattern[str], ...] = (
    # intent: someone says they (or another) will bring a weapon or hurt someone
    re.compile(
        rf"\b{_WILL} ?(bring|bringing|take|taking|carry|carrying) (a|my|his|her|their|the)? ?(\w+s )?{_WEAPON}"
    ),
    re.compile(
        rf"\b{_WILL} ?{_HARM} (him|her|them|you|u|someone|somebody|everyone|every\w*|a teacher|the teacher|teachers)\b"
    ),
    # the target is the school or its staff
    re.compile(
        rf"\b{_WEAPON}s? (in|into|to|at) (the|your|ur|that|this)? ?(school|academy|gates|class|classroom|staffroom)"
    ),
)


def _plain(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", re.sub(r"\s+", " ", text.lower()))


def threatens(text: str) -> bool:
    """True when ``text`` threatens people or the school (intent or a school target)."""
    plain = _plain(text)
    return any(pattern.search(plain) for pattern in THREAT_SIGNALS)


def raised_categories(
    categories: frozenset[Category], *, rule_ids: Iterable[str], text: str
) -> frozenset[Category]:
    """``categories`` plus THREAT when a violent safeguarding match threatens people or the school."""
    if Category.SAFEGUARDING not in categories or Category.THREAT in categories:
        return categories
    if not VIOLENT_SAFEGUARDING_RULES & frozenset(rule_ids) or not threatens(text):
        return categories
    return categories | {Category.THREAT}
