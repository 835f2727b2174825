"""SlackSender with the real slack-sdk WebClient against the local Slack server."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.notify import slack as slack_module
from monitor.notify.buttons import ButtonListener
from monitor.notify.errors import DeliveryError
from monitor.notify.escape import utf16_len
from monitor.notify.messages import CaseMessage, blocks_for, fallback_text
from monitor.notify.slack import SlackRef, SlackSender, make_web_client
from monitor.settings import Settings
from tests.servers.slack_server import APP_TOKEN, BOT_TOKEN, SlackServer

pytestmark = pytest.mark.peer


def case(**changes: Any) -> CaseMessage:
    """A typical abusive-reply case; ``changes`` override fields."""
    base = CaseMessage(
        case_id=7,
        school="Hillside Academy",
        account="@hillside_academy",
        platform="mastodon",
        author_handle="@someone@example.social",
        text="You lot are useless",
        url="https://example.social/@someone/111",
        category="abusive",
        severity="medium",
        state="new",
        scores={"toxicity": 0.82},
        rules=("abuse.insult",),
        due_at_text="Mon 23 Nov 15:00",
        history=("Alert posted",),
        buttons=("hide", "acknowledge"),
    )
    return replace(base, **changes)


def strip_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks as we sent them (the server adds a block_id to each, as Slack does)."""
    return [{k: v for k, v in block.items() if k != "block_id"} for block in blocks]


def test_post_sends_blocks_and_fallback_text(slack: SlackServer, sender: SlackSender) -> None:
    message = case()
    ref = sender.post("C0ALERTS", message)
    stored = slack.message(ref.channel, ref.ts)
    assert ref == SlackRef("C0ALERTS", stored.ts)
    assert strip_block_ids(stored.blocks or []) == blocks_for(message)
    assert stored.text == fallback_text(message)
    assert stored.thread_ts is None
    # Never unfurl a hostile link, never let Slack link names.
    assert stored.params["unfurl_links"] is False and stored.params["unfurl_media"] is False
    assert stored.params["parse"] == "none" and stored.params["link_names"] is False


def test_update_replaces_the_message(slack: SlackServer, sender: SlackSender) -> None:
    ref = sender.post("C0ALERTS", case())
    acknowledged = case(
        state="acknowledged", history=("Alert posted", "Dan acknowledged"), buttons=("hide",)
    )
    sender.update(ref, acknowledged)
    stored = slack.message(ref.channel, ref.ts)
    assert strip_block_ids(stored.blocks or []) == blocks_for(acknowledged)
    assert len(stored.edits) == 1
    # chat.update defaults to parse=client; we must say none explicitly.
    assert stored.params["parse"] == "none"
    assert len(slack.messages) == 1


def test_update_of_unknown_message_is_permanent(sender: SlackSender) -> None:
    with pytest.raises(DeliveryError) as caught:
        sender.update(SlackRef("C0ALERTS", "1.000001"), case())
    assert caught.value.permanent and caught.value.code == "message_not_found"


def test_reply_in_thread_is_escaped_plain_text(slack: SlackServer, sender: SlackSender) -> None:
    ref = sender.post("C0ALERTS", case())
    reply = sender.reply_in_thread(ref, "Hide requested by Dan <!here> *now*")
    [stored] = slack.replies(ref.channel, ref.ts)
    assert stored.ts == reply.ts and stored.thread_ts == ref.ts
    assert stored.text == "Hide requested by Dan &lt;!here&gt; ∗now∗"
    assert stored.params["mrkdwn"] is False


def test_dm_opens_a_conversation_then_posts(slack: SlackServer, sender: SlackSender) -> None:
    first = sender.dm("U0DSL", case(category="safeguarding"))
    second = sender.dm("U0DSL", case(case_id=8))
    assert first.channel == second.channel == slack.dm_channel("U0DSL")
    assert slack.request_count("conversations.open") == 2
    assert [m.channel for m in slack.messages] == [first.channel, first.channel]


def test_dm_to_unknown_user_is_permanent(sender: SlackSender) -> None:
    with pytest.raises(DeliveryError) as caught:
        sender.dm("U0NOBODY", case())
    assert caught.value.permanent and caught.value.code == "user_not_found"


HOSTILE_TEXT = (
    "<!channel> <!here|here> <!everyone> <@U123> <#C1|general> <!subteam^S1|@staff> "
    "<http://evil.example|click> @here & &amp; <script>alert(1)</script> "
    "*bold* _it_ ~s~ `code`\n> quoted \u202egnp.exe\u202c \x00\x1b[2J " + "spam " * 20_000
)


def test_hostile_text_arrives_inert(slack: SlackServer, sender: SlackSender) -> None:
    hostile = case(
        text=HOSTILE_TEXT,
        author_handle="<!everyone>",
        account="<@U0DSL>",
        school="Hill & Dale <b>",
        url="javascript:alert(1)",
        history=("<!channel> pinged by <@U1>",),
        rules=("<#C1>",),
        scores={"<!here>": 1.0},
    )
    ref = sender.post("C0ALERTS", hostile)  # the server checks Block Kit limits too
    stored = slack.message(ref.channel, ref.ts)
    payload = json.dumps(stored.blocks, ensure_ascii=False) + (stored.text or "")
    for token in (
        "<!",
        "<@",
        "<#",
        "<http",
        "<script",
        "@here",
        "@everyone",
        "\u202e",
        "\x00",
        "\x1b",
    ):
        assert token not in payload
    assert "javascript" not in payload
    assert "&lt;!channel&gt;" in payload and "Hill &amp; Dale &lt;b&gt;" in payload
    quoted = stored.blocks[2]["text"]["text"]  # type: ignore[index]
    assert quoted.startswith("“&lt;!channel&gt;") and quoted.endswith("…")
    assert utf16_len(quoted) <= 3000


def test_hostile_url_is_percent_encoded_in_the_link(
    slack: SlackServer, sender: SlackSender
) -> None:
    ref = sender.post("C0ALERTS", case(url="https://example.social/x?a=1&b=<!channel>|y"))
    link = slack.message(ref.channel, ref.ts).blocks[5]["text"]["text"]  # type: ignore[index]
    assert link == "<https://example.social/x?a=1&amp;b=%3C!channel%3E%7Cy|Open on Mastodon>"


def test_restricted_case_reaches_the_channel_without_content(
    slack: SlackServer, sender: SlackSender
) -> None:
    secret = "Zq7SECRETq7Z"
    ref = sender.post(
        "C0SAFE",
        case(
            text=f"{secret} disclosure",
            author_handle=secret,
            url=f"https://example.social/{secret}",
            scores={secret: 0.9},
            rules=(secret,),
            history=(secret,),
            restricted=True,
        ),
    )
    stored = slack.message(ref.channel, ref.ts)
    assert secret not in json.dumps(stored.blocks) + (stored.text or "")
    assert "Escalated to the DSL" in (stored.text or "")


def test_rate_limit_gives_retry_after_and_no_hidden_retry(
    slack: SlackServer, sender: SlackSender
) -> None:
    slack.fail_next("ratelimited", retry_after=17, method="chat.postMessage")
    with pytest.raises(DeliveryError) as caught:
        sender.post("C0ALERTS", case())
    assert caught.value.retry_after == 17.0
    assert caught.value.retryable and caught.value.code == "ratelimited"
    assert slack.request_count("chat.postMessage") == 1  # the outbox decides when to retry
    assert slack.messages == []
    sender.post("C0ALERTS", case())
    assert len(slack.messages) == 1


@pytest.mark.parametrize(
    ("kind", "code"),
    [("server_error", "http_500"), ("drop", "network")],
)
def test_server_trouble_is_retryable(
    slack: SlackServer, sender: SlackSender, kind: str, code: str
) -> None:
    slack.fail_next(kind)
    with pytest.raises(DeliveryError) as caught:
        sender.post("C0ALERTS", case())
    assert caught.value.retryable and caught.value.retry_after is None
    assert caught.value.code == code
    assert slack.request_count() == 1


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        ("internal_error", False),
        ("service_unavailable", False),
        ("fatal_error", False),
        ("invalid_auth", True),
        ("token_revoked", True),
        ("is_archived", True),
        ("invalid_blocks", True),
    ],
)
def test_slack_error_codes_are_classified(
    slack: SlackServer, sender: SlackSender, error: str, permanent: bool
) -> None:
    slack.fail_next("error", error=error)
    with pytest.raises(DeliveryError) as caught:
        sender.post("C0ALERTS", case())
    assert caught.value.permanent is permanent and caught.value.code == error


@pytest.mark.parametrize(
    ("channel", "code"),
    [("C0NOPE", "channel_not_found"), ("C0OUTSIDE", "not_in_channel")],
)
def test_wrong_channel_is_permanent(sender: SlackSender, channel: str, code: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        sender.post(channel, case())
    assert caught.value.permanent and caught.value.code == code


@pytest.mark.parametrize(
    ("token", "code"),
    [("xoxb-1-wrong-token", "invalid_auth"), (APP_TOKEN, "not_allowed_token_type")],
)
def test_bad_token_is_permanent(slack: SlackServer, token: str, code: str) -> None:
    sender = SlackSender(make_web_client(token, base_url=slack.base_url, timeout=5))
    with pytest.raises(DeliveryError) as caught:
        sender.post("C0ALERTS", case())
    assert caught.value.permanent and caught.value.code == code
    assert token not in str(caught.value) and token not in repr(caught.value)


def test_dead_server_is_retryable() -> None:
    server = SlackServer().start()
    base_url = server.base_url
    server.stop()
    sender = SlackSender(make_web_client(BOT_TOKEN, base_url=base_url, timeout=5))
    with pytest.raises(DeliveryError) as caught:
        sender.post("C0ALERTS", case())
    assert caught.value.retryable and caught.value.code == "network"


def test_sender_from_settings_checks_the_token(
    slack: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(slack_bot_token=SecretStr(BOT_TOKEN), slack_base_url=slack.base_url)
    identity = SlackSender.from_settings(settings).auth_check()
    assert (identity.team_id, identity.user_id, identity.bot_id) == ("T0LOCAL", "U0BOT", "B0LOCAL")
    with pytest.raises(DeliveryError) as caught:
        SlackSender.from_settings(Settings(slack_bot_token=None))
    assert caught.value.permanent


def test_find_keys_pages_back_through_the_history(
    slack: SlackServer, sender: SlackSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slack_module, "HISTORY_PAGE", 2)
    refs = [sender.post("C0ALERTS", case(case_id=n), key=f"k{n}") for n in range(5)]
    found = sender.find_keys("C0ALERTS", ["k0", "nope"], oldest=0.0)
    assert found == {"k0": refs[0]}  # the oldest message, on the last of three pages
    assert slack.request_count("conversations.history") == 3
    assert sender.find("C0ALERTS", "k4", oldest=0.0) == refs[4]
    assert sender.find("C0ALERTS", "k4", oldest=float(refs[4].ts)) is None  # older than asked


def test_find_keys_in_a_thread_sees_merged_keys(slack: SlackServer, sender: SlackSender) -> None:
    parent = sender.post("C0ALERTS", case(), key="first")
    reply = sender.reply_in_thread(
        parent, "Acknowledged by Dan.", key="update-1", also=["update-2"]
    )
    found = sender.find_keys(
        "C0ALERTS", ["first", "update-1", "update-2", "update-3"], oldest=0.0, thread=parent
    )
    assert found == {"update-1": reply, "update-2": reply}  # the parent is not a reply
    assert sender.find_keys("C0ALERTS", ["first"], oldest=0.0) == {"first": parent}


def test_tokens_never_reach_the_logs(
    slack: SlackServer, sender: SlackSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ref = sender.post("C0ALERTS", case(), key="k")
    sender.update(ref, case(state="acknowledged"))
    sender.reply_in_thread(ref, "noted", key="r")
    sender.find_keys("C0ALERTS", ["k"], oldest=0.0, thread=ref)
    slack.fail_next("ratelimited", method="chat.postMessage")
    with pytest.raises(DeliveryError):
        sender.post("C0ALERTS", case())
    listener = ButtonListener(
        app_token=APP_TOKEN,
        web_client=make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5),
        handler=lambda click: "ok",
        concurrency=1,
    )
    with listener:
        assert slack.wait_for(lambda: slack.connected_sessions == 1, 10.0)
    assert "chat.postMessage" in caplog.text  # slack-sdk did log its requests
    for token in (BOT_TOKEN, APP_TOKEN, BOT_TOKEN.removeprefix("xoxb-")):
        assert token not in caplog.text
