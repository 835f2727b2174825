"""R15: the case page shows the likes, reposts and replies the last verification stored."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.web.conftest import Trust

Client = Callable[[str], TestClient]


def test_the_case_page_shows_the_engagement(trust: Trust, client_for: Client) -> None:
    ab = trust.ids["abusive_case"]
    client = client_for("dana")
    assert 'id="engagement"' not in client.get(f"/cases/{ab}").text  # nothing counted yet
    with transaction(trust.sessions) as session:
        case = session.get(t.Case, ab)
        assert case is not None and case.item_id is not None
        item = session.get(t.Item, case.item_id)
        assert item is not None
        item.engagement = {"likes": 7, "reposts": 2, "replies": 1}
    page = client.get(f"/cases/{ab}").text
    assert "Engagement: 7 likes, 2 reposts, 1 reply" in page
