"""engine.slack against the Slack stand-in: what Slack receives, pagination, and each kind of
failure translated (429 -> SlackRateLimited at once, ok:false -> SlackError, down ->
SlackUnavailable); the channel cache and pacing slots in storage."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine

from engine import slack
from engine.settings import Settings
from storage.db import session_scope
from storage.queries import slack_channels
from tests.slack_peer import BOT_USER, SlackPeer, slack_peer

SECOND = timedelta(seconds=1)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with slack_peer(now=lambda: NOW.timestamp()) as running:
        yield running


@pytest.fixture
def web(peer: SlackPeer) -> WebClient:
    return slack.client(Settings(slack_bot_token=peer.token, slack_api_url=peer.url))


def test_a_post_carries_its_key_in_the_metadata(peer: SlackPeer, web: WebClient) -> None:
    channel = peer.add_channel("alerts")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    ts = slack.post(web, channel, "hi", blocks, "key-1")
    [call] = peer.calls_to("chat.postMessage")
    assert call.auth == f"Bearer {peer.token}"
    assert call.params["unfurl_links"] is False
    [message] = peer.messages(channel)
    assert message["ts"] == ts
    assert message["blocks"] == blocks
    assert message["metadata"] == {
        "event_type": "workflowbot_step",
        "event_payload": {"key": "key-1"},
    }


def test_a_channel_name_is_found_across_pages_and_then_cached(
    db: Engine, peer: SlackPeer, web: WebClient
) -> None:
    peer.list_page_cap = 2
    for name in ("one", "two", "three", "four"):
        peer.add_channel(name)
    peer.add_channel("old", archived=True)
    secret = peer.add_channel("secret", private=True)
    assert slack.resolve_channel(db, web, "#secret", NOW) == secret
    pages = peer.calls_to("conversations.list")
    assert len(pages) == 3
    assert pages[0].params.get("cursor") is None
    assert all(c.params.get("cursor") for c in pages[1:])
    assert {c.params["types"] for c in pages} == {"public_channel,private_channel"}
    assert {c.params["limit"] for c in pages} == {"1000"}
    assert {c.params["exclude_archived"] for c in pages} == {"1"}
    # Resolved once: the second time is the table's answer.
    assert slack.resolve_channel(db, web, "#secret", NOW) == secret
    assert len(peer.calls_to("conversations.list")) == 3
    # An id is used as is; an archived or unknown name is not found.
    assert slack.resolve_channel(db, web, "C0DIRECT1", NOW) == "C0DIRECT1"
    for missing in ("#old", "#nowhere"):
        with pytest.raises(slack.SlackError) as found:
            slack.resolve_channel(db, web, missing, NOW)
        assert found.value.code == "channel_not_found"


def test_a_429_is_raised_at_once_with_its_retry_after(peer: SlackPeer, web: WebClient) -> None:
    channel = peer.add_channel("alerts")
    peer.rate_limit("chat.postMessage", 30)
    started = time.monotonic()
    with pytest.raises(slack.SlackRateLimited) as limited:
        slack.post(web, channel, "hi", [], "key-1")
    assert limited.value.retry_after == 30
    assert time.monotonic() - started < 2  # nothing slept on it
    assert len(peer.calls_to("chat.postMessage")) == 1  # and nothing retried it
    assert peer.messages(channel) == []


def test_slack_errors_and_outages_are_told_apart(peer: SlackPeer, web: WebClient) -> None:
    channel = peer.add_channel("alerts")
    peer.error("chat.postMessage", "channel_not_found")
    with pytest.raises(slack.SlackError, match="channel_not_found"):
        slack.post(web, channel, "hi", [], "k")
    peer.unavailable("chat.postMessage", 503)
    with pytest.raises(slack.SlackUnavailable, match="503"):
        slack.post(web, channel, "hi", [], "k")
    wrong = slack.client(Settings(slack_bot_token="fake-wrong-token", slack_api_url=peer.url))
    with pytest.raises(slack.SlackError) as refused:
        slack.post(wrong, channel, "hi", [], "k")
    assert refused.value.code == "invalid_auth"
    peer.delay = 2.0
    web.timeout = 1
    with pytest.raises(slack.SlackUnavailable, match="unreachable"):
        slack.post(web, channel, "hi", [], "k")


def test_a_refused_connection_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    web = slack.client(
        Settings(slack_bot_token="fake-token", slack_api_url=f"http://127.0.0.1:{port}/api/")
    )
    with pytest.raises(slack.SlackUnavailable, match="unreachable"):
        slack.join(web, "C0000001")


def test_find_posted_reads_a_few_pages_of_history(peer: SlackPeer, web: WebClient) -> None:
    channel = peer.add_channel("alerts")
    mine = slack.post(web, channel, "mine", [], "key-mine")
    for i in range(250):  # newer messages push ours to the second page
        slack.post(web, channel, f"other {i}", [], f"key-{i}")
    before = NOW - timedelta(hours=1)
    assert slack.find_posted(web, channel, "key-mine", before) == mine
    calls = peer.calls_to("conversations.history")
    assert len(calls) == 2
    assert calls[0].params["include_all_metadata"] == "1"
    assert calls[0].params["oldest"] == f"{before.timestamp():.6f}"
    assert slack.find_posted(web, channel, "key-none", before) is None
    assert slack.find_posted(web, channel, "key-mine", NOW + timedelta(seconds=1)) is None
    outside = peer.add_channel("elsewhere", member=False)
    assert slack.find_posted(web, outside, "key-mine", before) is None


def test_join_and_its_refusal(peer: SlackPeer, web: WebClient) -> None:
    public = peer.add_channel("public", member=False)
    private = peer.add_channel("private", private=True, member=False)
    slack.join(web, public)
    assert BOT_USER in peer.channels[public].members
    with pytest.raises(slack.SlackError) as refused:
        slack.join(web, private)
    assert refused.value.code == "method_not_supported_for_channel_type"


def test_users_and_direct_messages(peer: SlackPeer, web: WebClient) -> None:
    sam = peer.add_user("sam", "sam@example.com", "Sam Owner")
    found = slack.users_info(web, sam)
    assert found == slack.SlackUser(sam, "sam@example.com", "sam", "Sam Owner")
    assert slack.lookup_by_email(web, "SAM@example.com") == found
    assert slack.users_info(web, "U0NOBODY1") is None
    assert slack.lookup_by_email(web, "nobody@example.com") is None
    dm = slack.open_dm(web, sam)
    assert slack.open_dm(web, sam) == dm
    slack.post(web, dm, "you own Acme now", [], "key-dm")
    assert [m["text"] for m in peer.messages(dm)] == ["you own Acme now"]


# -- storage ------------------------------------------------------------------------------------
@pytest.mark.both_dbs
def test_slots_are_reserved_one_a_second_in_line(db: Engine) -> None:
    with session_scope(db) as s:
        assert slack_channels.reserve_slot(s, channel_id="C1", now=NOW) == NOW
    with session_scope(db) as s:  # half a second later the next slot is a second after
        half = NOW + timedelta(seconds=0.5)
        assert slack_channels.reserve_slot(s, channel_id="C1", now=half) == NOW + SECOND
        assert slack_channels.reserve_slot(s, channel_id="C1", now=half) == NOW + 2 * SECOND
        assert slack_channels.reserve_slot(s, channel_id="C2", now=half) == half
    with session_scope(db) as s:  # naming a channel keeps its line
        slack_channels.remember(s, channel_id="C1", name="alerts", now=NOW)
        assert slack_channels.reserve_slot(s, channel_id="C1", now=half) == NOW + 3 * SECOND
        assert slack_channels.cached_id(s, name="alerts") == "C1"
        # The name moved to another channel (renamed, then made again).
        slack_channels.remember(s, channel_id="C9", name="alerts", now=NOW)
        assert slack_channels.cached_id(s, name="alerts") == "C9"
    with session_scope(db) as s:  # once the line has passed, the channel is free again
        later = NOW + timedelta(minutes=1)
        assert slack_channels.reserve_slot(s, channel_id="C1", now=later) == later


def test_many_reserving_at_once_get_distinct_slots(db: Engine) -> None:
    barrier = threading.Barrier(8)
    got: list[object] = []

    def take() -> None:
        barrier.wait()
        with session_scope(db) as s:
            got.append(slack_channels.reserve_slot(s, channel_id="C1", now=NOW))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [NOW + i * SECOND for i in range(8)]  # type: ignore[type-var]
