"""Fixtures of the Slack app's tests. A test module with its own `peer` uses that one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bot.wizard_person import VIEW_METHODS, answer_view
from tests.slack_peer import SlackPeer, slack_peer


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    """The Slack stand-in, answering views.open / push / update with a view id and hash."""
    with slack_peer() as found:
        for method in VIEW_METHODS:
            found.on(method, answer_view)
        yield found
