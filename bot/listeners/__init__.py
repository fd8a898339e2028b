"""The app's listeners, one module per kind of request, each with `register(app, deps)`."""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_bolt import App

from bot.authz import Admins
from engine.runtime import Runtime
from engine.settings import Settings


@dataclass(frozen=True)
class Deps:
    """What listeners use besides the request: settings, the process's runtime (database,
    broker, clock) and who the Slack admins are. Each request opens its own session from
    `rt.db`."""

    settings: Settings
    rt: Runtime
    admins: Admins = field(default_factory=lambda: Admins([], lambda group: []))


def register_all(app: App, deps: Deps) -> None:
    """Register every listener module's listeners on `app`."""
    from bot.listeners import approval, commands, home, importing, segments, wizard

    for module in (commands, approval, wizard, segments, home, importing):
        module.register(app, deps)
