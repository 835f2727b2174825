"""A case as a Slack message: Block Kit blocks and the fallback text, all made safe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.notify.escape import (
    ELLIPSIS,
    escape_mrkdwn,
    escape_text,
    inline_code,
    mrkdwn_link,
    truncate,
    utf16_len,
)

# Block Kit limits (Slack's block reference); the local Slack server enforces the same.
HEADER_LIMIT = 150
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
MAX_FIELDS = 10
CONTEXT_TEXT_LIMIT = 3000
BUTTON_TEXT_LIMIT = 75
FALLBACK_LIMIT = 600  # the fallback text becomes the push notification: keep it short
QUOTED_TEXT_LIMIT = 2900
MAX_SCORES = 8
MAX_RULES = 12
MAX_HISTORY = 10

ACTION_PREFIX = "case:"
BUTTON_ACTIONS = (
    "hide",
    "unhide",
    "report_block",
    "reply",
    "mark_responded",
    "assign_to_me",
    "police_reported",
    "police_not_needed",
    "acknowledge",
    "escalate",
    "not_abusive",
)
RESTRICTED_NOTICE = "Escalated to the DSL"
PERSONAL_DATA_NOTICE = "Personal data exposed"
# R6: what someone told in the DSL's place reads first (``school``: the school's name)
NO_DSL_NOTICE = (
    "No DSL or deputy DSL is in post for {school}: this comes to you in their place, "
    "as the DSL's line of escalation."
)

_BUTTON_LABELS = {
    "hide": "Hide reply",
    "unhide": "Unhide",
    "report_block": "Report and block",
    "reply": "Reply (acknowledge)",
    "mark_responded": "Mark responded",
    "assign_to_me": "Assign to me",
    "police_reported": "Police: reported",
    "police_not_needed": "Police: not needed",
    "acknowledge": "Acknowledge",
    "escalate": "Escalate",
    "not_abusive": "Not abusive",
}
_BUTTON_STYLES = {"hide": "danger", "acknowledge": "primary"}
# Buttons whose effect is hard to undo ask first (Slack shows the dialog before sending).
_BUTTON_CONFIRMS = {
    "hide": ("Hide this reply?", "Evidence is captured first, then the reply is hidden."),
    # where the platform cannot hide (Mastodon, Reddit outside a subreddit the school moderates)
    "report_block": (
        "Report and block?",
        "Evidence is captured first. The platform does not let the school hide this reply: "
        "it is reported to the platform's moderators and its author blocked.",
    ),
    "reply": (
        "Post this reply?",
        'Posted publicly under the comment: "Thank you for getting in touch. We have passed '
        'your message to the right member of staff and will reply as soon as we can."',
    ),
    "police_reported": ("Record a police report?", "Records that the police have been told."),
    "police_not_needed": (
        "Record that no police report is needed?",
        "Records your decision; add the reason with: monitor case ID --do police_not_needed "
        "--reason TEXT",
    ),
    # what escalating does (monitor.actions): senior leaders are told now, by Slack and email
    "escalate": ("Escalate this case?", "Senior leaders are told now, by Slack and email."),
}


@dataclass(frozen=True)
class CaseMessage:
    """Everything a Slack alert about one case shows; ``restricted`` hides the content."""

    case_id: int
    school: str
    account: str
    platform: str
    author_handle: str
    text: str
    url: str | None
    category: str
    severity: str
    state: str
    scores: Mapping[str, float] = field(default_factory=dict)
    rules: tuple[str, ...] = ()
    due_at_text: str | None = None
    # Safeguarding: shared channels see only "Escalated to the DSL", never the content.
    restricted: bool = False
    history: tuple[str, ...] = ()  # who did what, oldest first
    buttons: tuple[str, ...] = ()
    notice: str | None = None  # said first, above the content (e.g. ``NO_DSL_NOTICE``)
    owner: str | None = None  # who holds the case (its assignee's name)
    # R6: safeguarding content shown to the DSL: the notification (lock screen) says nothing of it
    private: bool = False
    case_url: str | None = None  # the case page in the web workplace (``monitor.web.links``)
    # R12: a restricted message about a personal-data case says what was exposed, in words
    withheld: str | None = None
    withheld_title: str | None = None  # its header (``redaction.WITHHELD_TITLES``)

    def __post_init__(self) -> None:
        unknown = [name for name in self.buttons if name not in BUTTON_ACTIONS]
        if unknown:
            raise ValueError(f"unknown button(s) {unknown}; allowed: {', '.join(BUTTON_ACTIONS)}")
        if len(set(self.buttons)) != len(self.buttons):
            raise ValueError("each button may appear once")


def _label(value: str) -> str:
    return value.replace("_", " ").strip().capitalize()


def _plain(text: str, *, limit: int = SECTION_TEXT_LIMIT) -> dict[str, Any]:
    # Text objects need at least one character.
    return {"type": "plain_text", "text": escape_text(text, limit=limit) or ELLIPSIS}


def _mrkdwn(safe_text: str) -> dict[str, Any]:
    # verbatim: no automatic linking of URLs, channel names or mentions in our own markup.
    return {"type": "mrkdwn", "text": safe_text, "verbatim": True}


def _field(label: str, safe_value: str) -> dict[str, Any]:
    return _mrkdwn(truncate(f"*{label}*\n{safe_value}", FIELD_TEXT_LIMIT))


def _header(message: CaseMessage) -> dict[str, Any]:
    if message.restricted:
        title = f"Case {message.case_id} · {_withheld_title(message)}"
    else:
        title = f"{message.severity.upper()} · {_label(message.category)} · Case {message.case_id}"
    return {"type": "header", "text": _plain(title, limit=HEADER_LIMIT)}


def _withheld_title(message: CaseMessage) -> str:
    if message.withheld:
        return message.withheld_title or PERSONAL_DATA_NOTICE
    return RESTRICTED_NOTICE


def _fields(message: CaseMessage) -> dict[str, Any]:
    fields = [
        _field("School", escape_mrkdwn(message.school, limit=500)),
        _field("Account", inline_code(message.account)),
        _field("Platform", escape_mrkdwn(_label(message.platform), limit=100)),
        _field("State", escape_mrkdwn(_label(message.state), limit=100)),
        _field("Owner", escape_mrkdwn(message.owner or "Nobody yet", limit=200)),
    ]
    if not message.restricted:
        if message.author_handle:
            fields.append(_field("Author", inline_code(message.author_handle)))
        if message.due_at_text:
            fields.append(_field("Due", escape_mrkdwn(message.due_at_text, limit=300)))
    return {"type": "section", "fields": fields[:MAX_FIELDS]}


def _button(action: str, case_id: int) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"{ACTION_PREFIX}{action}",
        "value": str(case_id),
        "text": _plain(_BUTTON_LABELS[action], limit=BUTTON_TEXT_LIMIT),
    }
    if action in _BUTTON_STYLES:
        button["style"] = _BUTTON_STYLES[action]
    if action in _BUTTON_CONFIRMS:
        title, text = _BUTTON_CONFIRMS[action]
        button["confirm"] = {
            "title": _plain(title, limit=100),
            "text": _plain(text, limit=300),
            "confirm": _plain(_BUTTON_LABELS[action], limit=30),
            "deny": _plain("Cancel", limit=30),
        }
    return button


def _content_blocks(message: CaseMessage) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.text.strip():
        blocks.append(
            {"type": "section", "text": _plain(f"“{message.text}”", limit=QUOTED_TEXT_LIMIT)}
        )
    if message.scores:
        ranked = sorted(message.scores.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_SCORES]
        shown = " · ".join(
            f"{escape_mrkdwn(_label(name), limit=60)} {score:.2f}" for name, score in ranked
        )
        blocks.append(
            {"type": "section", "text": _mrkdwn(truncate(f"*Scores*  {shown}", SECTION_TEXT_LIMIT))}
        )
    if message.rules:
        names = [inline_code(rule, limit=120) for rule in message.rules[:MAX_RULES]]
        more = len(message.rules) - MAX_RULES
        rules = ", ".join(names) + (f" and {more} more" if more > 0 else "")
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(truncate(f"*Rules fired*  {rules}", SECTION_TEXT_LIMIT)),
            }
        )
    if message.url:
        link = mrkdwn_link(message.url, f"Open on {_label(message.platform)}")
        if link is not None:
            blocks.append({"type": "section", "text": _mrkdwn(link)})
        else:
            blocks.append({"type": "section", "text": _plain("Link not shown: not a web address.")})
    return blocks


def _history_block(history: tuple[str, ...]) -> dict[str, Any]:
    # Newest entries win when space runs out: fill from the end, then restore the order.
    lines: list[str] = []
    used = 0
    for entry in reversed(history[-MAX_HISTORY:]):
        line = escape_text(entry, limit=500)
        if used + utf16_len(line) + 1 > CONTEXT_TEXT_LIMIT - 20:
            break
        lines.append(line)
        used += utf16_len(line) + 1
    lines.reverse()
    if len(history) > len(lines):
        lines.insert(0, f"({len(history) - len(lines)} earlier)")
    return {
        "type": "context",
        "elements": [{"type": "plain_text", "text": "\n".join(lines) or ELLIPSIS}],
    }


def _case_page_block(message: CaseMessage) -> list[dict[str, Any]]:
    """A link to the case page in the web workplace, when one is configured."""
    if message.case_url and (link := mrkdwn_link(message.case_url, "Open the case page")):
        return [{"type": "section", "text": _mrkdwn(link)}]
    return []


def blocks_for(message: CaseMessage) -> list[dict[str, Any]]:
    """The Block Kit blocks for ``message``; restricted ones carry no content, author or scores."""
    blocks = [_header(message)]
    if message.restricted:
        notice = (
            escape_mrkdwn(message.withheld, limit=SECTION_TEXT_LIMIT)
            if message.withheld
            else f"*{RESTRICTED_NOTICE}.* Details are visible to the safeguarding team only."
        )
        blocks.append({"type": "section", "text": _mrkdwn(notice)})
        blocks.append(_fields(message))
        blocks.extend(_case_page_block(message))
    else:
        if message.notice:
            notice = f"*{escape_mrkdwn(message.notice, limit=SECTION_TEXT_LIMIT - 2)}*"
            blocks.append({"type": "section", "text": _mrkdwn(notice)})
        blocks.append(_fields(message))
        blocks.extend(_content_blocks(message))
        blocks.extend(_case_page_block(message))
        if message.history:
            blocks.append(_history_block(message.history))
    if message.buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [_button(action, message.case_id) for action in message.buttons],
            }
        )
    return blocks


def fallback_text(message: CaseMessage) -> str:
    """The message's top-level ``text``: shown in notifications and where blocks cannot be."""
    if message.restricted:
        notice = f"Case {message.case_id} at {message.school}: " + (
            message.withheld or RESTRICTED_NOTICE
        )
        return escape_mrkdwn(notice, limit=FALLBACK_LIMIT)
    if message.private:
        # the lock screen shows this text: no content, no author, not even the account
        notice = (
            f"[{message.severity.upper()}] Case {message.case_id} at {message.school} needs "
            "the DSL: open Slack to read it"
        )
        return escape_mrkdwn(notice, limit=FALLBACK_LIMIT)
    head = f"[{message.severity.upper()}] {_label(message.category)} on {message.account} ({_label(message.platform)})"
    if message.author_handle:
        head += f" by {message.author_handle}"
    if message.notice:
        head = f"{message.notice} {head}"
    body = " ".join(message.text.split())
    return escape_mrkdwn(f"{head}: {body}" if body else head, limit=FALLBACK_LIMIT)
