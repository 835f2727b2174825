"""Socket Mode button clicks with the real slack-sdk SocketModeClient against the local Slack."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.notify.buttons import ButtonClick, ButtonListener, parse_block_actions
from monitor.notify.errors import DeliveryError
from monitor.notify.messages import CaseMessage
from monitor.notify.slack import SlackRef, SlackSender, make_web_client
from monitor.settings import Settings
from tests.servers.slack_server import APP_TOKEN, BOT_TOKEN, SlackServer

WAIT = 10.0  # seconds; every wait polls a condition and returns as soon as it holds


def case(case_id: int = 12) -> CaseMessage:
    return CaseMessage(
        case_id=case_id,
        school="Hillside Academy",
        account="@hillside",
        platform="bluesky",
        author_handle="@troll.bsky.social",
        text="nasty reply",
        url="https://bsky.app/profile/troll/post/1",
        category="abusive",
        severity="high",
        state="new",
        buttons=("hide", "acknowledge", "escalate", "not_abusive"),
    )


class Recorder:
    """A button handler that records clicks and answers like the lead's handler would."""

    def __init__(self, answer: Callable[[ButtonClick], str] | None = None) -> None:
        self.clicks: list[ButtonClick] = []
        self._lock = threading.Lock()
        self._answer = answer or (
            lambda click: f"Hide requested by Dan Murphy ({click.slack_user_id})"
        )

    def __call__(self, click: ButtonClick) -> str:
        with self._lock:
            self.clicks.append(click)
        return self._answer(click)


def listener_for(
    slack: SlackServer, handler: Callable[[ButtonClick], str], **kwargs: Any
) -> ButtonListener:
    client = make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5)
    # One worker: envelopes are handled in the order they arrive, so tests can reason about order.
    return ButtonListener(
        app_token=APP_TOKEN, web_client=client, handler=handler, concurrency=1, **kwargs
    )


@pytest.fixture
def posted(slack: SlackServer, sender: SlackSender) -> SlackRef:
    """A case alert with all four buttons, already in #alerts."""
    return sender.post("C0ALERTS", case())


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def listening(slack: SlackServer, recorder: Recorder) -> Iterator[ButtonListener]:
    listener = listener_for(slack, recorder)
    listener.start()
    try:
        assert slack.wait_for(lambda: slack.connected_sessions == 1, WAIT)
        yield listener
    finally:
        listener.stop()


@pytest.mark.peer
def test_button_round_trip(
    slack: SlackServer, posted: SlackRef, recorder: Recorder, listening: ButtonListener
) -> None:
    envelope_id = slack.click(
        slack.message(posted.channel, posted.ts), "case:hide", user_id="U0DAN"
    )
    assert slack.wait_for(lambda: len(slack.replies(posted.channel, posted.ts)) == 1, WAIT)
    assert recorder.clicks == [ButtonClick("U0DAN", "hide", 12, posted.channel, posted.ts)]
    assert slack.wait_for(lambda: len(slack.acks) == 1, WAIT)
    assert [ack.envelope_id for ack in slack.acks] == [envelope_id]
    [reply] = slack.replies(posted.channel, posted.ts)
    assert reply.text == "Hide requested by Dan Murphy (U0DAN)"
    assert listening.is_connected()


@pytest.mark.peer
def test_every_case_button_reaches_the_handler(
    slack: SlackServer, posted: SlackRef, recorder: Recorder, listening: ButtonListener
) -> None:
    message = slack.message(posted.channel, posted.ts)
    for action in ("acknowledge", "escalate", "not_abusive"):
        slack.click(message, f"case:{action}", user_id="U0AMY")
    assert slack.wait_for(lambda: len(slack.replies(posted.channel, posted.ts)) == 3, WAIT)
    assert [(c.action, c.case_id, c.slack_user_id) for c in recorder.clicks] == [
        ("acknowledge", 12, "U0AMY"),
        ("escalate", 12, "U0AMY"),
        ("not_abusive", 12, "U0AMY"),
    ]
    assert slack.wait_for(lambda: len(slack.acks) == 3, WAIT)


@pytest.mark.peer
def test_other_envelopes_are_acknowledged_and_ignored(
    slack: SlackServer, posted: SlackRef, recorder: Recorder, listening: ButtonListener
) -> None:
    message = slack.message(posted.channel, posted.ts)
    block, button = message.button("case:hide")
    foreign = slack.block_actions_payload(
        message, block, dict(button, action_id="other:thing"), "U0DAN"
    )
    forged = slack.block_actions_payload(message, block, dict(button, value="12; DROP"), "U0DAN")
    ids = [
        slack.send_envelope(foreign),
        slack.send_envelope(forged),
        slack.send_envelope({"event": {"type": "app_mention"}}, kind="events_api"),
        slack.click(message, "case:acknowledge"),
    ]
    # Envelopes are handled in order: once the last one is answered, the others are done.
    assert slack.wait_for(lambda: len(slack.replies(posted.channel, posted.ts)) == 1, WAIT)
    assert slack.wait_for(lambda: len(slack.acks) == 4, WAIT)
    assert sorted(ack.envelope_id for ack in slack.acks) == sorted(ids)
    assert [c.action for c in recorder.clicks] == ["acknowledge"]


@pytest.mark.peer
def test_redelivered_envelope_is_handled_once(
    slack: SlackServer, posted: SlackRef, recorder: Recorder, listening: ButtonListener
) -> None:
    message = slack.message(posted.channel, posted.ts)
    block, button = message.button("case:hide")
    first = slack.send_envelope(slack.block_actions_payload(message, block, button, "U0DAN"))
    slack.send_envelope(
        slack.block_actions_payload(message, block, button, "U0DAN"),
        envelope_id=first,
        retry_attempt=1,
    )
    slack.click(message, "case:acknowledge", user_id="U0AMY")
    assert slack.wait_for(lambda: len(slack.replies(posted.channel, posted.ts)) == 2, WAIT)
    assert slack.wait_for(lambda: len(slack.acks) == 3, WAIT)  # every delivery is acknowledged
    assert [(c.action, c.slack_user_id) for c in recorder.clicks] == [
        ("hide", "U0DAN"),
        ("acknowledge", "U0AMY"),
    ]


@pytest.mark.peer
def test_listener_from_settings(
    slack: SlackServer, posted: SlackRef, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLACK_APP_TOKEN", "SLACK_APP_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_app_token=SecretStr(APP_TOKEN),
        slack_base_url=slack.base_url.rstrip("/"),  # the trailing slash is added for us
    )
    with ButtonListener.from_settings(settings, recorder, concurrency=1):
        assert slack.wait_for(lambda: slack.connected_sessions == 1, WAIT)
        slack.click(slack.message(posted.channel, posted.ts), "case:not_abusive")
        assert slack.wait_for(lambda: len(slack.replies(posted.channel, posted.ts)) == 1, WAIT)
    assert [c.action for c in recorder.clicks] == ["not_abusive"]
    with pytest.raises(DeliveryError):
        ButtonListener.from_settings(Settings(slack_bot_token=SecretStr(BOT_TOKEN)), recorder)


@pytest.mark.peer
def test_handler_failure_is_reported_in_the_thread(slack: SlackServer, posted: SlackRef) -> None:
    def broken(click: ButtonClick) -> str:
        raise RuntimeError("database is locked")

    with listener_for(slack, broken):
        assert slack.wait_for(lambda: slack.connected_sessions == 1, WAIT)
        envelope_id = slack.click(slack.message(posted.channel, posted.ts), "case:hide")
        assert slack.wait_for(lambda: len(slack.replies(posted.channel, posted.ts)) == 1, WAIT)
    [reply] = slack.replies(posted.channel, posted.ts)
    assert reply.text is not None and reply.text.startswith("Could not record hide for case 12")
    assert "database is locked" not in reply.text
    assert slack.wait_for(lambda: len(slack.acks) == 1, WAIT)
    assert [ack.envelope_id for ack in slack.acks] == [envelope_id]


@pytest.mark.peer
def test_listener_reconnects_when_slack_closes_the_socket(
    slack: SlackServer, posted: SlackRef, recorder: Recorder
) -> None:
    with listener_for(slack, recorder, ping_interval=0.5):
        assert slack.wait_for(lambda: slack.connected_sessions == 1, WAIT)
        slack.close_sockets()
        assert slack.wait_for(
            lambda: slack.sessions_opened == 2 and slack.connected_sessions == 1, WAIT
        )
        slack.click(slack.message(posted.channel, posted.ts), "case:escalate")
        assert slack.wait_for(lambda: len(slack.replies(posted.channel, posted.ts)) == 1, WAIT)
    assert slack.request_count("apps.connections.open") == 2
    assert [c.action for c in recorder.clicks] == ["escalate"]


@pytest.mark.peer
def test_stop_closes_the_connection(slack: SlackServer, recorder: Recorder) -> None:
    listener = listener_for(slack, recorder)
    listener.start()
    assert slack.wait_for(lambda: slack.connected_sessions == 1, WAIT)
    with pytest.raises(RuntimeError):
        listener.start()
    listener.stop()
    listener.stop()  # idempotent
    assert slack.wait_for(lambda: slack.connected_sessions == 0, WAIT)
    assert not listener.is_connected()


@pytest.mark.peer
@pytest.mark.parametrize(
    ("app_token", "code"),
    [("xapp-1-wrong", "invalid_auth"), (BOT_TOKEN, "not_allowed_token_type")],
)
def test_bad_app_token_is_permanent(slack: SlackServer, app_token: str, code: str) -> None:
    client = make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5)
    listener = ButtonListener(app_token=app_token, web_client=client, handler=Recorder())
    with pytest.raises(DeliveryError) as caught:
        listener.start()
    assert caught.value.permanent and caught.value.code == code
    assert not listener.is_connected()
    assert app_token not in repr(listener)


def payload(**changes: Any) -> dict[str, Any]:
    """A minimal block_actions payload as Slack sends it."""
    base: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0DAN"},
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": "C0ALERTS"},
        "channel": {"id": "C0ALERTS"},
        "message": {"ts": "1.000001"},
        "actions": [{"action_id": "case:hide", "value": "12", "type": "button"}],
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, [ButtonClick("U0DAN", "hide", 12, "C0ALERTS", "1.000001")]),
        ({"type": "view_submission"}, []),
        ({"user": {}}, []),
        (
            {"channel": None, "message": None},
            [ButtonClick("U0DAN", "hide", 12, "C0ALERTS", "1.000001")],
        ),
        ({"actions": [{"action_id": "case:delete", "value": "12"}]}, []),
        ({"actions": [{"action_id": "hide", "value": "12"}]}, []),
        ({"actions": [{"action_id": "case:hide", "value": "١٢"}]}, []),  # Arabic-Indic digits
        ({"actions": [{"action_id": "case:hide", "value": "-1"}]}, []),
        ({"actions": [{"action_id": "case:hide"}]}, []),
        ({"actions": None}, []),
    ],
)
def test_parse_block_actions(changes: dict[str, Any], expected: list[ButtonClick]) -> None:
    assert parse_block_actions(payload(**changes)) == expected
