"""The tamper-evident audit log of security events (see ``backend.audit.service``).

``from backend import audit`` then ``audit.record(session, company_id=..., event=audit.Event.x, ...)``.
"""

from backend.audit.service import (
    GENESIS,
    INSTALLATION,
    RETENTION_YEARS,
    Event,
    changed_settings,
    prune_before,
    record,
    record_alone,
    record_export,
    retention_cutoff,
    username_digest,
)

__all__ = (
    "GENESIS",
    "INSTALLATION",
    "RETENTION_YEARS",
    "Event",
    "changed_settings",
    "prune_before",
    "record",
    "record_alone",
    "record_export",
    "retention_cutoff",
    "username_digest",
)
