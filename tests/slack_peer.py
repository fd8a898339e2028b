"""Re-export of bot.demo.slack_peer (the stand-in ships with the demo; tests reuse it)."""

from bot.demo.slack_peer import (
    BOT_ID,
    BOT_USER,
    FILES_PREFIX,
    TEAM,
    Answer,
    Call,
    Channel,
    Handler,
    SlackFail,
    SlackPeer,
    slack_peer,
)

__all__ = [
    "BOT_ID",
    "BOT_USER",
    "FILES_PREFIX",
    "TEAM",
    "Answer",
    "Call",
    "Channel",
    "Handler",
    "SlackFail",
    "SlackPeer",
    "slack_peer",
]
