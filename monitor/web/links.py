"""Links into the web workplace from Slack, email and the digest: one place builds them.

The base is ``organisation.dashboard_url`` or, when that is not set, ``web.public_url``;
without either nothing links (the messages say what to do on the server instead). A link
only names the page: whoever opens it signs in and the page applies the policy.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from monitor.config_models import Config


def base_url(config: Config) -> str | None:
    """Where staff reach the workplace, without a trailing slash; None when not configured."""
    base = config.organisation.dashboard_url or config.web.public_url
    if not base or not base.startswith(("https://", "http://")):
        return None
    return base.rstrip("/")


def case_url(base: str | None, case_id: int) -> str | None:
    """The case page of ``case_id``, or None without a base."""
    return f"{base}/cases/{int(case_id)}" if base else None


def post_url(base: str | None, draft_id: int) -> str | None:
    """The approval page of draft ``draft_id``, or None without a base."""
    return f"{base}/posts/{int(draft_id)}" if base else None


def digest_url(base: str | None, *, week: str, school: str | None = None) -> str | None:
    """The digest preview of ``week`` (of one school, or the trust), or None without a base."""
    if not base:
        return None
    query = {"week": week, **({"school": school} if school else {})}
    return f"{base}/digest?{urlencode(query, quote_via=quote)}"
