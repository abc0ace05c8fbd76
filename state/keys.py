"""Every Redis key alarmflow touches, declared once, in bkmonitor's style.

A :class:`KeyDef` carries the key's Redis type, its template (after the prefix), an optional
hash-field template, its TTL and the backend (``queue`` = bkmonitor's db 9, ``service`` =
db 10). Nothing else in the code spells a key by hand: flows and sinks call
``KEY.key(prefix, **fields)``.

The prefix rule is bkmonitor's (``alarm_backends/core/cache/key.py``): format the template,
and prepend ``prefix + "."`` unless the result already starts with the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class RedisType(StrEnum):
    STRING = "string"
    LIST = "list"
    SET = "set"
    HASH = "hash"
    ZSET = "zset"


class Backend(StrEnum):
    QUEUE = "queue"
    SERVICE = "service"
    CACHE = "cache"


@dataclass(frozen=True)
class KeyDef:
    """One registered key: what it holds, how it is named and how long it lives."""

    name: str
    type: RedisType
    template: str
    ttl: int
    backend: Backend
    field_template: str = ""
    note: str = ""

    def key(self, prefix: str, **fields: Any) -> str:
        """The full key for ``fields`` under ``prefix``, by bkmonitor's prefix rule.

        A template may name the prefix itself as ``{key_prefix}`` (bkmonitor's check-result
        keys do); the prefix is then not prepended again.
        """
        return self.prefixed(prefix, self.template.format(key_prefix=prefix, **fields))

    @staticmethod
    def prefixed(prefix: str, key: str) -> str:
        """bkmonitor's prefix rule: ``key`` under ``prefix``, unless it starts with it."""
        if key.startswith(prefix):
            return key
        return f"{prefix}.{key}"

    def around(self, prefix: str, middle: str, **fields: Any) -> tuple[str, str]:
        """The template formatted with ``fields`` before and after its field ``middle``,
        which it must name once: ``prefixed(prefix, before + str(value) + after)`` is then
        ``key(prefix, middle=value, ...)``, made without formatting (for a key made once per
        record whose varying field is not the last)."""
        before, found, after = self.template.partition(f"{{{middle}}}")
        if not found or found in after:
            raise ValueError(f"{self.name}'s template does not name {{{middle}}} once")
        return before.format(key_prefix=prefix, **fields), after.format(key_prefix=prefix, **fields)

    def head(self, prefix: str, last: str, **fields: Any) -> str:
        """The key for ``fields`` up to the template's last field ``last``, with which the
        template must end: ``head + str(value)`` is then ``key(prefix, last=value, ...)``,
        made without formatting (for a key made once per record)."""
        if not self.template.endswith(f"{{{last}}}"):
            raise ValueError(f"{self.name}'s template does not end with {{{last}}}")
        return self.key(prefix, **fields, **{last: ""})

    def field(self, **fields: Any) -> str:
        """The hash field for ``fields`` (hash keys only)."""
        if not self.field_template:
            raise ValueError(f"{self.name} has no field template")
        return self.field_template.format(**fields)


def build_prefix(app_code: str, platform: str, environment: str, cluster: str = "default") -> str:
    """bkmonitor's ``KEY_PREFIX``: ``{app_code}.{ee|ce|platform}{[env]}`` plus ``.{cluster}``."""
    abbr = {"enterprise": "ee", "community": "ce"}.get(platform, platform)
    env = "" if environment in ("", "production") else f"[{environment}]"
    prefix = f"{app_code}.{abbr}{env}"
    return prefix if cluster == "default" else f"{prefix}.{cluster}"


def prefix_pattern(prefix: str) -> str:
    """A SCAN/KEYS glob matching every key under ``prefix`` (glob characters escaped)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    return f"{escaped}.*"


# --- queue backend (bkmonitor db 9) -------------------------------------------------------

DATA_SIGNAL_KEY = KeyDef(
    "DATA_SIGNAL_KEY",
    RedisType.LIST,
    "access.data.signal",
    1800,
    Backend.QUEUE,
    note="LPUSH strategy ids; detect BRPOPs them. alarmflow keeps at most one pending entry "
    "per strategy (see docs/differences.md).",
)
ALERT_LIST_KEY = KeyDef(
    "ALERT_LIST_KEY",
    RedisType.LIST,
    "access.alert.{strategy_id}.{item_id}",
    1800,
    Backend.QUEUE,
    note="LPUSH cleaned alert JSON per (strategy, item).",
)
ALERT_DEDUP_KEY = KeyDef(
    "ALERT_DEDUP_KEY",
    RedisType.STRING,
    "access.alert.duplicate.{event_uid}",
    600,
    Backend.QUEUE,
    note="SET NX marker per cleaned alert id. It lives beside the lists it guards so that "
    "the marker and the pushes commit in one atomic script.",
)

INCIDENT_DOC_KEY = KeyDef(
    "INCIDENT_DOC_KEY",
    RedisType.STRING,
    "incident.doc.{incident_id}",
    7 * 86400,
    Backend.QUEUE,
    note="The incident document as JSON (bkmonitor keeps it in Elasticsearch).",
)
INCIDENT_ALERTS_KEY = KeyDef(
    "INCIDENT_ALERTS_KEY",
    RedisType.SET,
    "incident.alerts.{incident_id}",
    7 * 86400,
    Backend.QUEUE,
    note="Ids of the alerts linked to the incident.",
)
INCIDENT_HISTORY_KEY = KeyDef(
    "INCIDENT_HISTORY_KEY",
    RedisType.LIST,
    "incident.history.{incident_id}",
    7 * 86400,
    Backend.QUEUE,
    note="LPUSH of the incident's operation records ({operation_type, time, ...}): its "
    "creation, and each attribute change whose 'from' is set (bkmonitor's "
    "IncidentOperationDocument).",
)
INCIDENT_SIGNAL_KEY = KeyDef(
    "INCIDENT_SIGNAL_KEY",
    RedisType.LIST,
    "incident.signal",
    1800,
    Backend.QUEUE,
    note="Incident ids whose document changed; at most one pending entry per incident.",
)
INCIDENT_DEDUP_KEY = KeyDef(
    "INCIDENT_DEDUP_KEY",
    RedisType.STRING,
    "incident.sync.duplicate.{sync_uid}",
    600,
    Backend.QUEUE,
    note="SET NX marker per sync message (count_md5 of the message).",
)

# --- time-series access: flows.data and flows.real_time_data ------------------------------

DATA_LIST_KEY = KeyDef(
    "DATA_LIST_KEY",
    RedisType.LIST,
    "access.data.{strategy_id}.{item_id}",
    1800,
    Backend.QUEUE,
    note="LPUSH standard data records per (strategy, item); EXPIRE max(1800, 5 x interval).",
)
ACCESS_DUPLICATE_KEY = KeyDef(
    "ACCESS_DUPLICATE_KEY",
    RedisType.SET,
    "access.data.duplicate.strategy_group_{strategy_group_key}.{dt_event_time}",
    600,
    Backend.SERVICE,
    note="record ids seen per strategy group and data time (SADD marker); TTL 10 x interval.",
)
STRATEGY_CHECKPOINT_KEY = KeyDef(
    "STRATEGY_CHECKPOINT_KEY",
    RedisType.STRING,
    "checkpoint.strategy_group_{strategy_group_key}",
    3600,
    Backend.SERVICE,
    note="newest data time accessed for the group (epoch seconds).",
)
ACCESS_RUN_TIMESTAMP_KEY = KeyDef(
    "ACCESS_RUN_TIMESTAMP_KEY",
    RedisType.STRING,
    "access.run.strategy_group_{strategy_group_key}",
    3600,
    Backend.SERVICE,
    note="when the group last accessed data (wall clock, epoch seconds).",
)
ACCESS_PRIORITY_KEY = KeyDef(
    "ACCESS_PRIORITY_KEY",
    RedisType.HASH,
    "access.data.priority.{priority_group_key}",
    600,
    Backend.SERVICE,
    field_template="{dimensions_md5}",
    note='"priority:data_time" of the strongest strategy that saw the series (mirror of state; '
    "a claim older than 10 intervals is deleted while the field still holds it).",
)
NO_DATA_LIST_KEY = KeyDef(
    "NO_DATA_LIST_KEY",
    RedisType.LIST,
    "access.nodata.{strategy_id}.{item_id}",
    600,
    Backend.QUEUE,
    note="LPUSH every record that passed the filters, per item with no-data detection on; "
    "EXPIRE max(600, 5 x interval).",
)
NOISE_REDUCE_TOTAL_KEY = KeyDef(
    "NOISE_REDUCE_TOTAL_KEY",
    RedisType.ZSET,
    "access.noise_reduce.total.{strategy_id}.{noise_dimension_hash}",
    86400,
    Backend.SERVICE,
    note="ZADD md5(noise dimension values) scored by data time, per strategy with noise "
    "reduction on.",
)
STRATEGY_SNAPSHOT_KEY = KeyDef(
    "STRATEGY_SNAPSHOT_KEY",
    RedisType.STRING,
    "cache.strategy.snapshot.{strategy_id}.{update_time}",
    3600,
    Backend.SERVICE,
    note="the strategy JSON that anomalies point at (strategy_snapshot_key).",
)
ANOMALY_LIST_KEY = KeyDef(
    "ANOMALY_LIST_KEY",
    RedisType.LIST,
    "detect.anomaly.list.{strategy_id}.{item_id}",
    1800,
    Backend.QUEUE,
    note="LPUSH anomaly JSON {data, anomaly, strategy_snapshot_key} per (strategy, item).",
)
ANOMALY_SIGNAL_KEY = KeyDef(
    "ANOMALY_SIGNAL_KEY",
    RedisType.LIST,
    "detect.anomaly.signal",
    1800,
    Backend.QUEUE,
    note='"{sid}.{iid}" of lists that got anomalies; at most one pending entry each.',
)
CHECK_RESULT_CACHE_KEY = KeyDef(
    "CHECK_RESULT_CACHE_KEY",
    RedisType.ZSET,
    "{key_prefix}.detect.result.{strategy_id}.{item_id}.{dimensions_md5}.{level}",
    3600,
    Backend.SERVICE,
    note='member "ts|value" or "ts|ANOMALY", score ts.',
)
LAST_CHECKPOINTS_CACHE_KEY = KeyDef(
    "LAST_CHECKPOINTS_CACHE_KEY",
    RedisType.HASH,
    "detect.last.checkpoint.{strategy_id}.{item_id}",
    7 * 86400,
    Backend.SERVICE,
    field_template="detect.result.{dimensions_md5}.{level}",
    note="newest checked data time per series and level (and __ALL__).",
)

# --- cache backend (bkmonitor db 8), read only ---------------------------------------------

STRATEGY_IDS_CACHE_KEY = KeyDef(
    "STRATEGY_IDS_CACHE_KEY",
    RedisType.STRING,
    "cache.strategy_ids",
    86400,
    Backend.CACHE,
    note="bkmonitor's StrategyCacheManager: JSON list of strategy ids.",
)
STRATEGY_CACHE_KEY = KeyDef(
    "STRATEGY_CACHE_KEY",
    RedisType.STRING,
    "cache.strategy_{strategy_id}",
    86400,
    Backend.CACHE,
    note="bkmonitor's StrategyCacheManager: one strategy as JSON.",
)

# --- event access (alarm_backends/service/access/event) -------------------------------------------

EVENT_DEDUP_KEY = KeyDef(
    "EVENT_DEDUP_KEY",
    RedisType.STRING,
    "access.event.duplicate.{record_digest}.{strategy_id}.{item_id}",
    600,
    Backend.QUEUE,
    note="SET NX marker per event record (md5 of the flat record) and strategy item, so a "
    "record replayed after a crash writes nothing (alarmflow's own key).",
)
QOS_CONTROL_KEY = KeyDef(
    "QOS_CONTROL_KEY",
    RedisType.HASH,
    "access.event.qos.control",
    1800,
    Backend.SERVICE,
    field_template="{dimensions_md5}",
    note="Event QoS counters, HINCRBY per count_md5([biz, sid, iid, ip, level]) only while "
    "the hash exists; above 3 the record is dropped.",
)

# --- converge (alarm_backends/service/converge; service backend, db 10) ---------------------------

CONVERGE_DIMENSION_KEY = KeyDef(
    "FTA_CONVERGE_DIMENSION_KEY",
    RedisType.ZSET,
    "fta_action.converge.{strategy_id}.{dimension}.{value}",
    1800,
    Backend.SERVICE,
    note="bkmonitor's converge index: member action_{id}, score its create time; written for "
    "alert_info, notice_info and action_info so that several deployments see the same actions.",
)
CONVERGE_LOCK_KEY = KeyDef(
    "ACTION_CONVERGE_KEY_PROCESS_LOCK",
    RedisType.STRING,
    "fta_action.converge.{dimension}.process.lock",
    60,
    Backend.SERVICE,
    note="bkmonitor's converge counter lock: INCR, above max(count//2, 1) DECR and busy.",
)
CONVERGE_AUDIT_KEY = KeyDef(
    "CONVERGE_AUDIT_KEY",
    RedisType.LIST,
    "fta_action.audit.{alert_id}",
    7 * 86400,
    Backend.SERVICE,
    note="LPUSH of the audit record (JSON) of every converge decision about the alert.",
)
CONVERGE_NOTICE_COLLECT_KEY = KeyDef(
    "FTA_NOTICE_COLLECT_KEY",
    RedisType.HASH,
    "fta_action.notice.{action_signal}.{notice_way}.{alert_id}",
    86400,
    Backend.SERVICE,
    field_template="{receiver}",
    note="bkmonitor's notice-collect pool: receiver -> newest action id (HMAX) of the notices "
    "sent to be executed (or approved); alert_id is the action's alert ids joined by _.",
)
CONVERGE_DECISION_MARK = KeyDef(
    "CONVERGE_DECISION_MARK",
    RedisType.STRING,
    "fta_action.converge.decision.{decision_id}",
    7 * 86400,
    Backend.SERVICE,
    note="SET NX marker per converge decision id: a replayed decision writes nothing.",
)


REGISTRY: tuple[KeyDef, ...] = (
    DATA_SIGNAL_KEY,
    ALERT_LIST_KEY,
    ALERT_DEDUP_KEY,
    INCIDENT_DOC_KEY,
    INCIDENT_ALERTS_KEY,
    INCIDENT_HISTORY_KEY,
    INCIDENT_SIGNAL_KEY,
    INCIDENT_DEDUP_KEY,
    DATA_LIST_KEY,
    ACCESS_DUPLICATE_KEY,
    STRATEGY_CHECKPOINT_KEY,
    ACCESS_RUN_TIMESTAMP_KEY,
    ACCESS_PRIORITY_KEY,
    NO_DATA_LIST_KEY,
    NOISE_REDUCE_TOTAL_KEY,
    STRATEGY_SNAPSHOT_KEY,
    ANOMALY_LIST_KEY,
    ANOMALY_SIGNAL_KEY,
    CHECK_RESULT_CACHE_KEY,
    LAST_CHECKPOINTS_CACHE_KEY,
    STRATEGY_IDS_CACHE_KEY,
    STRATEGY_CACHE_KEY,
    EVENT_DEDUP_KEY,
    QOS_CONTROL_KEY,
    CONVERGE_DIMENSION_KEY,
    CONVERGE_LOCK_KEY,
    CONVERGE_AUDIT_KEY,
    CONVERGE_NOTICE_COLLECT_KEY,
    CONVERGE_DECISION_MARK,
)
