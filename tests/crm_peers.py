"""Re-export of bot.demo.crm_peers (the stand-in ships with the demo; tests reuse it)."""

from bot.demo.crm_peers import (
    HS_STATUSES,
    HS_TASK_ASSOCIATIONS,
    HS_TASK_PROPERTIES,
    HS_TYPES,
    TASK_FIELDS,
    TASK_STATUSES,
    Answer,
    HubSpotPeer,
    Peer,
    SalesforcePeer,
    Seen,
    hs_error,
    oauth_error,
    serve,
    sf_error,
)

__all__ = [
    "HS_STATUSES",
    "HS_TASK_ASSOCIATIONS",
    "HS_TASK_PROPERTIES",
    "HS_TYPES",
    "TASK_FIELDS",
    "TASK_STATUSES",
    "Answer",
    "HubSpotPeer",
    "Peer",
    "SalesforcePeer",
    "Seen",
    "hs_error",
    "oauth_error",
    "serve",
    "sf_error",
]
