"""Publishing on Reddit exactly once: Reddit has no idempotency key, so after an unknown outcome
the account's own submissions are searched for the post's marker before submitting again.

The marker is an empty Markdown link at the end of the body (``[](#ssm-<key>)``), which Reddit
renders as nothing. Thread parts become paragraphs of one self post; images are not posted to
Reddit (the checks refuse a Reddit target with images before approval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import praw
from prawcore.exceptions import (
    Forbidden,
    NotFound,
    OAuthException,
    PrawcoreException,
    ResponseException,
    ServerError,
)

from connectors.base import AccountRef
from connectors.publishing import OutgoingPost, Progress, Published, PublishError

T = TypeVar("T")
LOOKBACK = 25  # own submissions read when looking for an earlier attempt
DEFAULT_USER_AGENT = "school-social-monitor/0.1"


def marker(key: str) -> str:
    """The invisible marker that identifies the post of publication ``key``."""
    return f"[](#ssm-{key})"


def body_of(post: OutgoingPost) -> str:
    """The self post's text: every part, then the marker."""
    return "\n\n".join(post.parts) + "\n\n" + marker(post.key)


class RedditPublisher:
    """Publishes self posts to ``subreddit`` with a logged-in ``praw.Reddit``."""

    def __init__(self, reddit: Any, subreddit: str, username: str) -> None:
        self.reddit = reddit
        self.subreddit = subreddit
        self.username = username

    @classmethod
    def for_account(cls, account: AccountRef) -> RedditPublisher:
        """Log in as ``account`` (password grant, as the connector does)."""
        creds = account.credentials
        options = account.options
        missing = [n for n in ("client_id", "client_secret", "password") if not creds.get(n)]
        if missing:
            raise PublishError(
                f"reddit account {account.handle!r} lacks {', '.join(missing)}", permanent=True
            )
        # the school's own subreddit: the first of those it watches
        subreddit = next(iter(options.get("subreddits") or ()), "")
        if not subreddit:
            raise PublishError(
                f"reddit account {account.key!r}: list its subreddit in options.subreddits",
                permanent=True,
            )
        settings: dict[str, Any] = {
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "username": account.handle,
            "password": creds["password"],
            "user_agent": options.get("user_agent") or DEFAULT_USER_AGENT,
            "timeout": float(options.get("timeout", 30)),
            "check_for_updates": False,
            "check_for_async": False,
        }
        for name in ("oauth_url", "reddit_url", "short_url"):
            if options.get(name):
                settings[name] = options[name]
        return cls(praw.Reddit(**settings), str(subreddit), account.handle)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (OAuthException, Forbidden) as exc:
            raise PublishError(f"reddit refused: {type(exc).__name__}", permanent=True) from exc
        except NotFound as exc:
            raise PublishError("reddit: not found", permanent=True) from exc
        except ServerError as exc:
            raise PublishError(f"reddit server error: {exc}") from exc
        except ResponseException as exc:
            status = getattr(exc.response, "status_code", 0)
            raise PublishError(f"reddit said {status}", permanent=status in (400, 422)) from exc
        except (PrawcoreException, praw.exceptions.PRAWException) as exc:
            raise PublishError(f"reddit error: {type(exc).__name__}: {exc}") from exc

    def _find(self, post: OutgoingPost) -> Any | None:
        sign = marker(post.key)
        mine = self._call(
            lambda: list(self.reddit.redditor(self.username).submissions.new(limit=LOOKBACK))
        )
        return next((s for s in mine if sign in (getattr(s, "selftext", "") or "")), None)

    def publish(self, post: OutgoingPost, done: Sequence[str], progress: Progress) -> Published:
        """One self post; after an unknown outcome, the earlier one if it landed."""
        if done:
            found = self._call(lambda: self.reddit.submission(id=done[0]))
            return Published(ids=tuple(done), url=self._url(found), item_id=f"t3_{done[0]}")
        submission = self._find(post) if post.retry else None
        if submission is None:
            title = post.title or post.parts[0][:300]
            submission = self._call(
                lambda: self.reddit.subreddit(self.subreddit).submit(title, selftext=body_of(post))
            )
        ids = [str(submission.id)]
        progress(ids)
        return Published(ids=tuple(ids), url=self._url(submission), item_id=f"t3_{ids[0]}")

    def _url(self, submission: Any) -> str:
        permalink = str(getattr(submission, "permalink", "") or "")
        return f"https://www.reddit.com{permalink}" if permalink.startswith("/") else permalink

    def withdraw(self, ids: Sequence[str]) -> None:
        """Delete the submission (the account's own post)."""
        for submission_id in ids:
            self._call(self.reddit.submission(id=submission_id).delete)
