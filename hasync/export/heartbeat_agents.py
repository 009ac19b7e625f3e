"""The heartbeat resource.d -> OCF mapping the export uses; it lives in
hasync.config.resource_d, shared with `hasync haresources import --ocf` and `hasync check`."""

from hasync.config.resource_d import (
    MAPPED,
    NFS_NOTIFY_SCRIPTS,
    RESOURCE_D,
    Agent,
    NfsContext,
    NoEquivalent,
    heartbeat_agent,
)

__all__ = ["MAPPED", "NFS_NOTIFY_SCRIPTS", "RESOURCE_D", "Agent", "NfsContext", "NoEquivalent", "heartbeat_agent"]
