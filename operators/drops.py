"""Why a valid record, or one of its writes, is not written: the ``reason`` label of
``alarmflow_dropped_total``. One enumeration for every flow, so a dashboard, an alert rule or a
reader of the docs meets the same names everywhere. Input that cannot be taken at all is a
rejection (:class:`operators.rejects.Reason`), not a drop."""

from __future__ import annotations

from enum import StrEnum


class Drop(StrEnum):
    # Every flow.
    DUPLICATE = "duplicate"
    """The record's once-only marker exists: it was written before (a replay, or a repeat)."""
    OTHER_SHARD = "other_shard"
    """Another deployment on the hash ring owns the record's business."""
    EXPIRED = "expired"
    """Older than the flow's expiry window."""
    # Alert access.
    UNMATCHED = "unmatched"
    """No strategy takes the alert."""
    # Event and time-series access.
    NO_BUSINESS = "no_business"
    """The record names no business (0 or missing)."""
    NO_STRATEGY = "no_strategy"
    """No strategy reads the record."""
    UNKNOWN_HOST = "unknown_host"
    """The host is not in the CMDB host table."""
    HOST_DISABLED = "host_disabled"
    """The host's monitoring is switched off in the CMDB."""
    OUT_OF_RANGE = "out_of_range"
    """The host or dimensions are outside the strategy item's target."""
    CONDITION = "condition"
    """The strategy item's ``agg_condition`` does not match."""
    NO_VALUE = "no_value"
    """The point carries no value for the strategy's metric."""
    INHIBITED = "inhibited"
    """A higher-priority strategy of the same priority group holds the dimensions."""
    LATE = "late"
    """Periodic data access: the point's bucket had closed (its end + the lateness passed)."""
    OUT_OF_QUERY = "out_of_query"
    """Periodic data access: the point fails the conditions the TSDB query applies."""
    QOS = "qos"
    """The event flow's QoS counter for these dimensions is above its limit."""
    IGNORED_TYPE = "ignored_type"
    """A GSE event type bkmonitor ignores."""
    IGNORED_FSTYPE = "ignored_fstype"
    """A disk-full event on a file system bkmonitor ignores (iso9660, tmpfs, udf)."""
    IGNORED_READONLY = "ignored_readonly"
    """A read-only disk event without a read-only mount to report."""
    PING_SCOPE = "ping_scope"
    """A ping event whose target is no known host of the business."""
    # Incident access.
    EXPERIENCE_STAGE = "experience_stage"
    """A create in the experience stage, which only schedules a check in bkmonitor."""
