"""Every flow under a least-privilege Redis ACL user (:func:`state.acl.acl_rules`: its
prefix's keys, the commands of :data:`state.acl.FLOW_COMMANDS`) on the real broker and Redis:
the same Redis and the same dead letters as a run of the default user. A command missing
from the list fails the start check; refused to the script's call or to the converge lock
(``NOPERM``), it is waited out and stops the flow; refused inside the script, it comes back on
a record's writes, and the record becomes a dead letter the default user's run does not have."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
import redis

from alarmflow.config import BUNDLED_STRATEGIES
from alarmflow.event_samples import by_host, sample_events
from alarmflow.kafka_tools import produce, read_all
from alarmflow.samples import sample_messages
from bench.converge_throughput import by_dimension
from bench.converge_throughput import storm as action_storm
from operators.strategy import load_strategy_file
from state.acl import acl_rules
from state.keys import STRATEGY_CACHE_KEY, STRATEGY_IDS_CACHE_KEY
from tests.flows.flowrun import FlowEnv, bytewax_command, one_partition, run, snapshot_dbs
from tests.flows.test_data import MESSAGES as DATA_MESSAGES
from tests.flows.test_data import by_table
from tests.flows.test_incident import by_incident
from tests.flows.test_incident import storm as incident_storm
from tests.flows.test_real_time_data import MESSAGES as REAL_TIME_MESSAGES

pytestmark = pytest.mark.integration

DBS = {"cache": 8, "queue": 9, "service": 10}


@dataclass(frozen=True)
class Case:
    """One flow's run: its input, the settings it needs, and a part of the name of a key it
    must write (so that two runs that wrote nothing do not pass)."""

    kind: str
    messages: Callable[[], list[bytes]]
    writes: str
    key: Callable[[bytes], bytes] | None = None
    settings: tuple[tuple[str, str], ...] = ()


CASES = {
    # Strategies from bkmonitor's strategy cache: GET and MGET on the cache database.
    "alert": Case(
        "ALERT",
        lambda: list(sample_messages(300, int(time.time()))),
        ".access.alert.",
        settings=(("ALARMFLOW_STRATEGIES", "redis"),),
    ),
    "event": Case(
        "EVENT", lambda: list(sample_events(300, int(time.time()))), ".detect.anomaly.", by_host
    ),
    "data": Case("DATA", lambda: DATA_MESSAGES, ".access.data.priority.", by_table),
    "real_time_data": Case(
        "REAL_TIME_DATA", lambda: REAL_TIME_MESSAGES, ".access.data.", one_partition
    ),
    "incident": Case("INCIDENT", lambda: incident_storm(20), ".incident.doc.", by_incident),
    # bkmonitor's counter lock (its counters stay, at 0, until their TTL).
    "converge": Case(
        "ACTION",
        lambda: [orjson.dumps(m) for m in action_storm(300)],
        ".process.lock",
        by_dimension,
        (("ALARMFLOW_CONVERGE_LOCK", "1"),),
    ),
}


@pytest.fixture
def narrow_user(redis_server) -> Iterator[Callable[[str], str]]:
    """Makes an ACL user with :func:`acl_rules` for a prefix; its URL (database 9)."""
    admin = redis.Redis.from_url(redis_server.url(0))
    made: list[str] = []

    def make(prefix: str) -> str:
        name, password = f"flow{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        admin.execute_command(
            "ACL", "SETUSER", name, "on", f">{password}", *acl_rules(prefix).split()
        )
        made.append(name)
        parts = urlsplit(redis_server.url(9))
        return urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.netloc}"))

    yield make
    for name in made:
        admin.execute_command("ACL", "DELUSER", name)


def cache_strategies(client: redis.Redis, prefix: str) -> None:
    """The bundled strategies in bkmonitor's strategy cache under ``prefix``."""
    strategies = load_strategy_file(BUNDLED_STRATEGIES)
    ids = [s.id for s in strategies]
    client.set(STRATEGY_IDS_CACHE_KEY.key(prefix), orjson.dumps(ids))
    for s in strategies:
        client.set(STRATEGY_CACHE_KEY.key(prefix, strategy_id=s.id), orjson.dumps(dict(s.raw)))


@pytest.mark.parametrize("flow", list(CASES))
def test_a_flow_under_the_least_privilege_user_writes_what_the_default_user_does(
    flow, make_flow_env, kafka_topics, narrow_user, redis_server
):
    case = CASES[flow]
    env = make_flow_env(3, case.kind)
    produce(env.bootstrap, env.topics[case.kind], case.messages(), case.key)
    clients = {db: redis.Redis.from_url(redis_server.url(n)) for db, n in DBS.items()}
    runs = {}
    for name in ("default", "acl"):
        dlq, decisions, audit = kafka_topics(f"{name}-dlq", f"{name}-dec", f"{name}-audit")
        prefix = f"{env.prefix}{name}"
        url = narrow_user(prefix) if name == "acl" else env.redis_url
        settings = (
            *case.settings,
            ("ALARMFLOW_DECISION_TOPIC", decisions),
            ("ALARMFLOW_AUDIT_TOPIC", audit),
        )
        runs[name] = replace(env, redis_url=url, prefix=prefix, dlq_topic=dlq, settings=settings)
        cache_strategies(clients["cache"], prefix)
        run(bytewax_command(f"flows.{flow}"), runs[name].environ())

    # Leaving out each group's last access run: its wall time.
    written = snapshot_dbs(clients, runs["acl"].prefix, skip=".access.run.")
    assert written == snapshot_dbs(clients, runs["default"].prefix, skip=".access.run.")
    assert any(case.writes in key for _, key in written)
    assert dead_letters(runs["acl"]) == dead_letters(runs["default"])


def dead_letters(env: FlowEnv) -> list[tuple[str, str]]:
    """The reasons and errors of a run's dead letters, sorted."""
    found = (orjson.loads(m) for m in read_all(env.bootstrap, env.dlq_topic))
    return sorted((m["reason"], m["error"]) for m in found)


def test_the_least_privilege_user_can_touch_nothing_else(narrow_user, redis_server):
    prefix = f"p{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(narrow_user(prefix))
    client.set(f"{prefix}.mine", 1)
    for denied in (
        lambda: client.set(f"other{prefix}.key", 1),
        lambda: client.flushdb(),
        lambda: client.keys("*"),
        lambda: client.config_get("*"),
        lambda: client.eval("return 1", 0),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            denied()
