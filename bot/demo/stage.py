"""The demo's stage: the local stand-ins of every peer, and the settings that point at them.

Slack's Web API, SMTP, a webhook receiver, Google (token endpoint and Gmail API),
Salesforce and HubSpot all run on 127.0.0.1 for the demo's duration (with `--slack`, the
real Slack workspace of SLACK_BOT_TOKEN instead of the Slack stand-in).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from bot.demo.crm_peers import HubSpotPeer, SalesforcePeer, serve
from bot.demo.gmail_peer import GooglePeer, google_peer
from bot.demo.sink import Sink, webhook_sink
from bot.demo.slack_peer import SlackPeer, slack_peer
from bot.demo.smtp_peer import SmtpPeer, smtp_peer
from engine.settings import Settings

ALERTS = "cs-alerts"
APPROVALS = "cs-approvals"
PUBLIC_URL = "http://127.0.0.1:8000"
GMAIL_CALLBACK = PUBLIC_URL + "/oauth/google/callback"


@dataclass(frozen=True)
class Teammate:
    name: str
    email: str
    salesforce: str
    hubspot: str


TEAM = [
    Teammate("Dana", "dana@lumen.example", "005000000000001AAA", "64492917"),
    Teammate("Bob", "bob@lumen.example", "005000000000002AAA", "64492918"),
    Teammate("Chris", "chris@lumen.example", "005000000000003AAA", "64492919"),
]


@dataclass
class Stage:
    """The running stand-ins (`slack` is None against a real workspace)."""

    slack: SlackPeer | None
    smtp: SmtpPeer
    sink: Sink
    google: GooglePeer
    salesforce: SalesforcePeer
    hubspot: HubSpotPeer
    slack_ids: dict[str, str]  # teammate email -> Slack user id (stand-in only)

    def settings(self, base: Settings, *, database_url: str, secret_key: str) -> Settings:
        """`base` pointed at the stand-ins, on the demo's database, in-process broker."""
        update: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": None,
            "public_url": PUBLIC_URL,
            "secret_key": [secret_key],
            "approval_channel": f"#{APPROVALS}",
            "smtp_url": self.smtp.url(),
            "email_from": "Lumen CS <cs@lumen.example>",
            "google_client_id": self.google.client_id,
            "google_client_secret": self.google.client_secret,
            "google_token_url": self.google.url + "/token",
            "gmail_api_url": self.google.url + "/",
            "salesforce_client_id": self.salesforce.client_id,
            "salesforce_client_secret": self.salesforce.client_secret,
            "salesforce_refresh_token": self.salesforce.refresh_token,
            "salesforce_login_url": self.salesforce.url + "/",
            "salesforce_api_version": self.salesforce.version,
            "hubspot_token": self.hubspot.token,
            "hubspot_api_url": self.hubspot.url + "/",
            "webhook_allowed_hosts": ["127.0.0.1"],
            "webhook_secret": None,
        }
        if self.slack is not None:
            update |= {
                "slack_api_url": self.slack.url,
                "slack_bot_token": self.slack.token,
                "slack_admins": list(self.slack_ids.values()),
            }
        return base.model_copy(update=update)

    def add_account(self, name: str, domain: str) -> None:
        """The CRMs know every account of the dataset (tasks are made on their record)."""
        self.salesforce.add_account(name)
        self.hubspot.add_company(name, domain)


@contextmanager
def stand_ins(*, real_slack: bool) -> Iterator[Stage]:
    """Start every stand-in on 127.0.0.1; stop them all on leaving."""
    with ExitStack() as stack:
        slack = None if real_slack else stack.enter_context(slack_peer())
        slack_ids: dict[str, str] = {}
        if slack is not None:
            slack.add_channel(ALERTS)
            slack.add_channel(APPROVALS)
            for person in TEAM:
                slack_ids[person.email] = slack.add_user(
                    person.name.lower(), person.email, person.name
                )
        salesforce = stack.enter_context(serve(SalesforcePeer()))
        hubspot = stack.enter_context(serve(HubSpotPeer()))
        assert isinstance(salesforce, SalesforcePeer) and isinstance(hubspot, HubSpotPeer)
        for person in TEAM:
            salesforce.users.add(person.salesforce)
            hubspot.owners.add(person.hubspot)
        yield Stage(
            slack=slack,
            smtp=stack.enter_context(smtp_peer()),
            sink=stack.enter_context(webhook_sink()),
            google=stack.enter_context(google_peer()),
            salesforce=salesforce,
            hubspot=hubspot,
            slack_ids=slack_ids,
        )
