"""Insight's rules, in one place: how a free-text reason becomes a group, the wait histogram's
buckets (and how a percentile is read from them), and what counts as a machine open or a
link scanner's click. storage.queries.stats applies the same rules in SQL (`RULES`).

Machine opens. Mail privacy proxies fetch the tracking pixel themselves, right after
delivery, whether anyone reads the email or not: Apple Mail Privacy Protection (user agent
just `Mozilla/5.0`), Gmail's image proxy (`... GoogleImageProxy`, `ggpht.com`), Yahoo's
(`YahooMailProxy`). An open from such an agent (or with no agent at all) within
MACHINE_OPEN_SECONDS of sending is a machine open; later, the same proxy is fetching for a
person reading it, and it counts as a human open.

Scanner clicks. Link scanners (Microsoft Safe Links, mail gateways) follow every link as the
email arrives. A click within SCANNER_CLICK_SECONDS of sending, or a click on one link while
another link of the same email is clicked within SCANNER_BURST_SECONDS (all links at once),
is a scanner click. A person's click also counts as a person's open (images may be off).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from storage.queries.stats import Rules

MACHINE_OPEN_SECONDS = 60.0
SCANNER_CLICK_SECONDS = 30.0
SCANNER_BURST_SECONDS = 2.0
# Lower-cased user agents, as SQL LIKE patterns ('%' any text).
PROXY_AGENTS = ("%googleimageproxy%", "%ggpht.com%", "%yahoomailproxy%", "mozilla/5.0", "")

# Free-text exit and skip reasons grouped (LIKE pattern -> group); any other text groups by
# what comes before its first ':'.
REASONS = (
    ("exit_if %", "exit condition"),
    ("exited by hand%", "exited by hand"),
    ("exited from Slack%", "exited by hand"),
    ("the workflow was disabled%", "workflow disabled"),
    ("the contact was forgotten%", "contact forgotten"),
    ("step % failed (on_failure: stop)", "a step failed"),
    ("only_if %", "condition false"),
    ("came due while the workflow was disabled%", "resume window passed"),
    ("draft #% discarded%", "draft discarded"),
    ("draft #% expired%", "draft expired"),
    ("draft #% withdrawn%", "draft withdrawn"),
    ("draft #%suppression list%", "suppressed recipients"),
    ("the text rendered empty%", "empty message"),
)

# Wait histogram: bucket 0 is under 1 s, bucket i (1..46) is [2^((i-1)/2), 2^(i/2)) seconds,
# bucket 47 is 2^23 s (97 days) and more. A percentile is its bucket's geometric middle:
# within ±19% of the exact figure (√(√2) ≈ 1.19).
WAIT_BOUNDS = tuple(2 ** (i / 2) for i in range(47))
WAIT_RESOLUTION = "±19% (log buckets, each √2 wide, from 1 s; under 1 s shows as 0.5 s)"

RULES = Rules(
    reasons=REASONS,
    wait_bounds=WAIT_BOUNDS,
    proxy_agents=PROXY_AGENTS,
    machine_open_seconds=MACHINE_OPEN_SECONDS,
    scanner_click_seconds=SCANNER_CLICK_SECONDS,
    scanner_burst_seconds=SCANNER_BURST_SECONDS,
)


def _like(pattern: str, text: str) -> bool:
    """SQL LIKE ('%' any text, '_' any character), as storage applies it."""
    parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None


def is_machine_open(user_agent: str, seconds_after_send: float) -> bool:
    """A pixel fetch by a mail privacy or image proxy as the email arrived (module doc)."""
    agent = user_agent.lower()
    return seconds_after_send < MACHINE_OPEN_SECONDS and any(_like(p, agent) for p in PROXY_AGENTS)


def is_scanner_click(
    seconds_after_send: float, seconds_to_other_link_click: float | None = None
) -> bool:
    """A link scanner's click: right after sending, or in a burst over the email's links."""
    burst = (
        seconds_to_other_link_click is not None
        and abs(seconds_to_other_link_click) <= SCANNER_BURST_SECONDS
    )
    return seconds_after_send < SCANNER_CLICK_SECONDS or burst


def reason_group(text: str | None) -> str:
    """The group a free-text exit or skip reason is counted under."""
    text = text or ""
    for pattern, label in REASONS:
        if _like(pattern, text):
            return label
    return text.split(":", 1)[0][:200]


def percentile(buckets: Mapping[int, int], share: float) -> float | None:
    """The value at this share (0.5: the median) of a wait histogram, None when empty."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return _middle(bucket)
    return _middle(max(buckets))


def _middle(bucket: int) -> float:
    if bucket <= 0:
        return 0.5
    if bucket >= len(WAIT_BOUNDS):
        return WAIT_BOUNDS[-1]
    return math.sqrt(WAIT_BOUNDS[bucket - 1] * WAIT_BOUNDS[bucket])
