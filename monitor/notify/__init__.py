"""The notification delivery edge: Slack (posts, threads, DMs, buttons) and email."""

from monitor.notify.buttons import ButtonClick, ButtonHandler, ButtonListener, parse_block_actions
from monitor.notify.email import EmailSender
from monitor.notify.errors import DeliveryError
from monitor.notify.messages import BUTTON_ACTIONS, CaseMessage, blocks_for, fallback_text
from monitor.notify.slack import SlackIdentity, SlackRef, SlackSender, make_web_client

__all__ = [
    "BUTTON_ACTIONS",
    "ButtonClick",
    "ButtonHandler",
    "ButtonListener",
    "CaseMessage",
    "DeliveryError",
    "EmailSender",
    "SlackIdentity",
    "SlackRef",
    "SlackSender",
    "blocks_for",
    "fallback_text",
    "make_web_client",
    "parse_block_actions",
]
