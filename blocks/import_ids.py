"""The ids of `/workflow import`'s modal and messages, shared by the builders
(blocks.importing) and the handlers (bot.listeners.importing).

The plan view's `private_metadata` and the Apply button's `value` are the id of the
slack_forms row (kind "import") that keeps the document until Apply.
"""

from __future__ import annotations

from enum import StrEnum


class ImportModal(StrEnum):
    """callback_id of the modal's views."""

    INPUT = "import_input_view"  # submit: plan the pasted document
    LOADING = "import_loading_view"  # no submit: planning or applying
    PLAN = "import_plan_view"  # submit: Apply (absent when nothing changes)
    DONE = "import_done_view"  # what was done, or why not


class ImportAction(StrEnum):
    """action_id of the plan message's buttons."""

    APPLY = "import_apply"
    CANCEL = "import_cancel"


class ImportBlock(StrEnum):
    """block_id of the input (errors are keyed by it) and of the plan message's buttons."""

    DOCUMENT = "import_document"
    ACTIONS = "import_actions"


class ImportInput(StrEnum):
    """action_id of the input: `view.state.values[block_id][action_id]`."""

    DOCUMENT = "document"
