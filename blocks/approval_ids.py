"""The ids of a draft's approval message and its modals, shared by the builders
(blocks.approval) and the handlers that answer them.

Every button's `value` is the draft id (`str(draft.id)`); both modals carry it in
`private_metadata`. A field of the edit modal missing from its state was not offered (too
long for a Slack input): it stays as it is.
"""

from __future__ import annotations

from enum import StrEnum


class DraftAction(StrEnum):
    """action_id of the approval message's buttons."""

    APPROVE = "draft_approve"  # pending: Approve & send (behind a confirm dialog)
    EDIT = "draft_edit"  # pending: opens the edit modal
    DISCARD = "draft_discard"  # pending
    EXIT = "draft_exit"  # pending: ends this record's enrollment (the draft is withdrawn)
    SHOW_ALL = "draft_show_all"  # the body was cut: opens the full body modal
    RETRY = "draft_retry"  # failed: send it again (engine.drafts.send_again)
    MARK_SENT = "draft_mark_sent"  # unknown: it did go out
    SEND_AGAIN = "draft_send_again"  # unknown: send it (again)


class DraftModal(StrEnum):
    """callback_id of the modals."""

    BODY = "draft_body_view"  # the whole body; no submit
    EDIT = "draft_edit_view"  # submit: recipients, subject, body


class DraftBlock(StrEnum):
    """block_id of the approval message's blocks and of the edit modal's inputs."""

    ACTIONS = "draft_actions"
    BODY = "draft_body"
    EDIT_TO = "draft_edit_to"
    EDIT_CC = "draft_edit_cc"
    EDIT_SUBJECT = "draft_edit_subject"
    EDIT_BODY = "draft_edit_body"


class DraftInput(StrEnum):
    """action_id of the edit modal's inputs: `view.state.values[block_id][action_id]`."""

    TO = "to"  # comma-separated addresses
    CC = "cc"  # comma-separated addresses, may be empty
    SUBJECT = "subject"
    BODY = "body"
