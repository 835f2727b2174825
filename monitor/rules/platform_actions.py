"""How platform actions are carried out, as data (R5, R7, R8).

``jobs/actions.py`` runs them in this order: evidence first, then the platform (falling back
where a platform cannot hide), then the verification checks.
"""

from __future__ import annotations

from datetime import timedelta

from monitor.constants import ActionKind

A = ActionKind

# R7: nothing is hidden, removed, blocked or reported before it is recorded.
EVIDENCE_FIRST: frozenset[ActionKind] = frozenset({A.HIDE, A.REMOVE, A.BLOCK, A.MUTE, A.REPORT})

# R8: these are re-checked; the last check is the target (removal within 24 hours).
VERIFIED: frozenset[ActionKind] = frozenset({A.HIDE, A.REMOVE, A.REPORT})
CHECK_AFTER: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(hours=24))

# R5: where the platform cannot hide or remove a reply, it is reported to the platform and its
# author blocked, or muted where blocking is not offered (the first of FALLBACK_AUTHOR_STEPS
# the platform supports). Any other unsupported action fails as it is.
FALLS_BACK: frozenset[ActionKind] = frozenset({A.HIDE, A.REMOVE})
FALLBACK_AUTHOR_STEPS: tuple[ActionKind, ...] = (A.BLOCK, A.MUTE)
