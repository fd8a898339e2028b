"""The ids of the `/workflow segment new` modal, shared by its builders (blocks.segments) and
its handlers (bot.listeners.segments).

As in the wizard, an input block's element has the block's own id as its action_id, so the
object select (`dispatch_action`) is routed by the same name the form reads it by.
"""

from __future__ import annotations

from enum import StrEnum


class SegmentModal(StrEnum):
    """callback_id of each view the segment modal shows."""

    NEW = "segment_new"  # name, object, rule, and the live count
    LOADING = "segment_loading"  # while the segment is saved
    DONE = "segment_done"  # the outcome (saved, refused, failed)


class SegmentBlock(StrEnum):
    """block_id (and the action_id of its element) of the modal's blocks."""

    NAME = "sg_name"
    OBJECT = "sg_object"  # dispatches: the count depends on it
    RULE = "sg_rule"
    TOOLS = "sg_tools"  # the actions block holding Count members
    COUNT = "sg_count"  # the count, or the rule's error


class SegmentAction(StrEnum):
    """action_id of the modal's buttons."""

    COUNT = "segment_count"
