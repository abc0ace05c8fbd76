"""The least a Redis ACL user needs to run every flow: the commands the flows send, and the
keys under their prefix (every key of :mod:`state.keys` is ``{prefix}.…``)."""

from __future__ import annotations

FLOW_COMMANDS: tuple[str, ...] = (
    # connecting (the database of the URL) and the start check
    "select",
    "ping",
    # the push-once script (state.idempotent): run by its digest, loaded once per server (a
    # pipeline checks that it is loaded first), and the commands it runs
    "evalsha",
    "script|load",
    "script|exists",
    "set",
    "del",
    "exists",
    "expire",
    "sadd",
    "srem",
    "lpush",
    "lpos",
    "zadd",
    "zremrangebyscore",
    "hset",
    "hget",
    "hdel",
    "hincrby",
    # the acknowledgement of replicas (ALARMFLOW_REDIS_REPLICAS)
    "wait",
    # bkmonitor's converge counter lock (ALARMFLOW_CONVERGE_LOCK=1; redis-py's incr and decr
    # send INCRBY and DECRBY)
    "incrby",
    "decrby",
    "ttl",
    # bkmonitor's strategy cache (ALARMFLOW_STRATEGIES=redis)
    "get",
    "mget",
)
"""Every command a flow sends to Redis, directly or from the push-once script."""


def acl_rules(prefix: str) -> str:
    """The rules of an ACL user that runs the flows under ``prefix`` and can do nothing else:
    ``ACL SETUSER alarmflow on >password`` followed by these."""
    return f"resetkeys ~{prefix}.* resetchannels -@all {_allowed(FLOW_COMMANDS)}"


SENTINEL_COMMANDS: tuple[str, ...] = ("sentinel|masters",)
"""Every command a flow sends to a sentinel: redis-py asks for the masters it monitors (and
picks the one the URL names) on each new connection, and so does the start check."""


def sentinel_acl_rules() -> str:
    """The rules of a sentinel's ACL user for the flows (``ALARMFLOW_REDIS_SENTINEL_USERNAME``):
    ``ACL SETUSER alarmflow on >password`` followed by these."""
    return f"resetkeys resetchannels -@all {_allowed(SENTINEL_COMMANDS)}"


def _allowed(commands: tuple[str, ...]) -> str:
    return " ".join(f"+{command}" for command in commands)
