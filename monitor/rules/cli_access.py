"""When the server's command line may show safeguarding content (R6): ``--as`` is justified.

Anyone with a shell on the server can type a DSL's staff id. Content is shown only when the
OS user running the command is the one mapped to that member of staff (``staff[].os_user``),
or when they break the glass with a reason, which is audited and told to the DSL.
"""

from __future__ import annotations


def cli_content_refusal(*, mapped: bool, break_glass: bool, reason: str | None) -> str | None:
    """Why the CLI may not show safeguarding content to this OS user as this staff member."""
    if mapped:
        return None
    if break_glass and reason and reason.strip():
        return None
    if break_glass:
        return "--break-glass needs --reason: why the content must be read now"
    return (
        "showing safeguarding content with --as needs your OS user mapped to that member of "
        "staff (staff[].os_user), or --break-glass --reason TEXT (audited, and the DSL is told)"
    )


def break_glass_notice(*, staff: str, os_user: str, case_id: int, reason: str) -> str:
    """What the DSL is told when someone breaks the glass (no content of the case)."""
    return (
        f"{staff} read safeguarding case {case_id} on the server with --break-glass "
        f"(OS user {os_user}). Reason given: {reason.strip()}"
    )
