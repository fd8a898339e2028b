"""Each workflow's webhook signing secret (Standard Webhooks `whsec_...`), stored encrypted.

`apply` creates one for a workflow with a webhook step and prints it once; `workflowbot
workflows rotate-secret NAME` replaces it, and for 24 hours the previous one signs too (the
`webhook-signature` header carries both signatures), so a receiver switches without losing a
delivery. Without SECRET_KEY nothing can be stored: WEBHOOK_SECRET, if set, signs every
workflow's webhooks, else they go unsigned.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.secrets import Vault
from engine.settings import Settings
from storage.action_models import WorkflowSecret

OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def ensure(session: Session, *, workflow_id: int, vault: Vault, now: datetime) -> str | None:
    """Create the workflow's secret if it has none; the new secret (to show once) or None."""
    if session.get(WorkflowSecret, workflow_id) is not None:
        return None
    secret = new_secret()
    session.add(
        WorkflowSecret(workflow_id=workflow_id, secret=vault.encrypt(secret), created_at=now)
    )
    session.flush()
    return secret


def rotate(session: Session, *, workflow_id: int, vault: Vault, now: datetime) -> str:
    """A new secret; the current one keeps signing for OVERLAP. Returns the new one."""
    secret = new_secret()
    row = session.get(WorkflowSecret, workflow_id)
    if row is None:
        session.add(
            WorkflowSecret(workflow_id=workflow_id, secret=vault.encrypt(secret), created_at=now)
        )
    else:
        row.previous, row.previous_until = row.secret, now + OVERLAP
        row.secret, row.rotated_at = vault.encrypt(secret), now
    session.flush()
    return secret


def signing(
    session: Session, *, workflow_ids: Collection[int], settings: Settings, now: datetime
) -> dict[int, list[str]]:
    """The secrets that sign each workflow's webhooks now (one query for a batch): its own
    (and the previous one within the overlap), else WEBHOOK_SECRET, else none (unsigned)."""
    fallback = [settings.webhook_secret] if settings.webhook_secret else []
    found = {workflow_id: fallback for workflow_id in workflow_ids}
    if not settings.secret_key or not found:
        return found
    vault = Vault(settings.secret_key)
    for row in session.scalars(
        select(WorkflowSecret).where(WorkflowSecret.workflow_id.in_(sorted(found)))
    ):
        keys = [vault.decrypt(row.secret)]
        if row.previous is not None and row.previous_until is not None and now < row.previous_until:
            keys.append(vault.decrypt(row.previous))
        found[row.workflow_id] = keys
    return found
