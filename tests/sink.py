"""Re-export of bot.demo.sink (the stand-in ships with the demo; tests reuse it)."""

from bot.demo.sink import (
    Received,
    Sink,
    webhook_sink,
)

__all__ = [
    "Received",
    "Sink",
    "webhook_sink",
]
