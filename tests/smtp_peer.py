"""Re-export of bot.demo.smtp_peer (the stand-in ships with the demo; tests reuse it)."""

from bot.demo.smtp_peer import (
    HOST,
    Received,
    SmtpPeer,
    free_port,
    self_signed,
    smtp_peer,
)

__all__ = [
    "HOST",
    "Received",
    "SmtpPeer",
    "free_port",
    "self_signed",
    "smtp_peer",
]
