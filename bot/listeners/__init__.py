"""The app's listeners, one module per kind of request, each with `register(app, deps)`."""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_bolt import App
from sqlalchemy.orm import Session

from bot.authz import Admins
from engine import workspace
from engine.definitions import WorkspaceDef
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

    def apply(self, session: Session, doc: WorkspaceDef, user: str) -> workspace.Plan:
        """Apply a workspace document in `session` as `workflowbot apply` does, by a Slack
        user; DefinitionError with its problems when the workspace does not take it."""
        return workspace.apply(
            session,
            doc,
            now=self.rt.clock.now(),
            by=f"slack:{user}",
            allowed_hosts=self.settings.webhook_allowed_hosts,
            settings=self.settings,
        )


def register_all(app: App, deps: Deps) -> None:
    """Register every listener module's listeners on `app`."""
    from bot.listeners import approval, commands, home, importing, insight, segments, wizard

    for module in (commands, approval, wizard, segments, home, importing, insight):
        module.register(app, deps)
