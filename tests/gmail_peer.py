"""Re-export of bot.demo.gmail_peer (the stand-in ships with the demo; tests reuse it)."""

from bot.demo.gmail_peer import (
    API,
    READ_SCOPE,
    SEND_SCOPE,
    TOKEN_LIFETIME,
    TOKEN_PATH,
    GooglePeer,
    Request,
    SentMessage,
    google_error,
    google_peer,
)

__all__ = [
    "API",
    "READ_SCOPE",
    "SEND_SCOPE",
    "TOKEN_LIFETIME",
    "TOKEN_PATH",
    "GooglePeer",
    "Request",
    "SentMessage",
    "google_error",
    "google_peer",
]
