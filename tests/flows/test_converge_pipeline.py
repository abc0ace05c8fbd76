"""The converge flow's pipeline in-process under ``bytewax.testing``, its start-up (the shield
table) and its counter lock, without a broker."""

from __future__ import annotations

import re
from collections.abc import Iterator

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from alarmflow.config import ConfigError, load_settings
from bench.converge_throughput import storm
from flows.converge import PatientLock, converge, runtime
from flows.converge_logic import DimensionLogic
from flows.converge_outputs import Outputs
from flows.outage import Outage, unavailable
from operators.converge.audit import audit_record, decision_message
from operators.converge.context import parse_action
from operators.converge.driver import run
from operators.converge.engine import DEFAULT, Runtime
from operators.converge.plan import plan
from operators.converge.records import Planned
from operators.rejects import Reason, SourceRecord
from state.converge_lock import RedisLock
from state.converge_writes import DecisionWrites
from tests.flows.test_outage import Clock
from tests.operators.converge.timeline import WEBHOOK, action_json, at, push
from tests.refusals import REFUSALS, refuse_writes


def test_the_pipeline_in_process_equals_the_engine():
    """Batches of 64 records (a dimension's actions span batches): the engine's decisions,
    their audit records, their Redis writes; the bad records rejected."""
    messages = storm(200)
    records = [SourceRecord("a", 0, i, orjson.dumps(m)) for i, m in enumerate(messages)]
    records.append(SourceRecord("a", 0, len(records), b"{not json"))
    bad = action_json(9999, alerts=[{"id": "x", "dimensions": 5}])
    records.append(SourceRecord("a", 0, len(records), orjson.dumps(bad)))
    batches = [records[i : i + 64] for i in range(0, len(records), 64)]
    flow = Dataflow("converge_test")
    made = converge(op.input("in", flow, TestingSource(batches)), load_settings({}), DEFAULT)
    got: list[Outputs] = []
    op.output("out", made, TestingSink(got))
    run_main(flow)

    expected = run([parse_action(m) for m in messages])
    assert len(expected) > len(messages)
    audits = {d.id: orjson.dumps(audit_record(d)) for d in expected}
    messages_out = sorted(m for o in got for m in o.decisions)
    assert messages_out == sorted((d.id, orjson.dumps(decision_message(d))) for d in expected)
    assert sorted(m for o in got for m in o.audit) == sorted(audits.items())
    prefix = load_settings({}).key_prefix
    pushes = sorted((r.push for o in got for r in o.routed), key=lambda p: p.marker.key)
    want = [DecisionWrites(prefix)(d, audits[d.id]) for d in expected]
    assert pushes == sorted(want, key=lambda p: p.marker.key)
    errs = [e.reason for o in got for e in o.rejected]
    assert errs == [Reason.NOT_JSON, Reason.WRONG_TYPE]


def test_the_shield_table_is_read_at_start_and_a_bad_one_is_a_config_error(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(orjson.dumps({"global_shield_enabled": True, "timezones": {"2": "UTC"}}))
    bad.write_bytes(orjson.dumps({"shields": [{"id": 1, "cycle_config": {"type": 3}}]}))
    table = runtime(load_settings({"ALARMFLOW_SHIELDS": str(good)})).shields
    assert table.global_shield and table.timezones == {2: "UTC"}
    assert table.strategies, "the strategy table comes along for uptime and StrategyNotFound"
    with pytest.raises(ConfigError, match="only single time ranges"):
        runtime(load_settings({"ALARMFLOW_SHIELDS": str(bad)}))


@pytest.mark.parametrize(
    "table",
    [
        {"shields": [{"id": 1, "bk_biz_id": 2, "cycle_config": {"type": "x"}}]},
        {"shields": [{"id": 1, "bk_biz_id": 2, "cycle_config": {"type": None}}]},
        {"shields": 5},
    ],
)
def test_a_shield_table_of_a_wrong_inner_shape_is_a_config_error(tmp_path, table):
    path = tmp_path / "shields.json"
    path.write_bytes(orjson.dumps(table))
    with pytest.raises(ConfigError, match=re.escape(f"ALARMFLOW_SHIELDS={path}: ")):
        runtime(load_settings({"ALARMFLOW_SHIELDS": str(path)}))


def test_an_unreadable_shield_table_is_a_config_error(tmp_path):
    path = tmp_path / "shields.json"
    path.write_bytes(b"{}")
    settings = load_settings({"ALARMFLOW_SHIELDS": str(path)})
    path.unlink()
    path.mkdir()
    with pytest.raises(
        ConfigError, match=re.escape(f"ALARMFLOW_SHIELDS={path}: ") + ".*Is a directory"
    ):
        runtime(settings)


class FlakyLock:
    """A counter lock behind a Redis that refuses ``down`` calls, then answers."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.calls: list[str] = []

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if self.down:
            self.down -= 1
            raise redis.ConnectionError("Connection refused")

    def acquire(self, dimension: str, parallel: int) -> bool:
        self._call(f"acquire {dimension} {parallel}")
        return True

    def release(self, dimension: str) -> None:
        self._call(f"release {dimension}")


def test_the_counter_lock_waits_out_a_redis_outage():
    clock = Clock()
    flaky = FlakyLock(down=3)
    lock = PatientLock(
        flaky, Outage("t_lock", "redis://h:1/10", 60, clock.sleep, lambda: clock.now)
    )
    assert lock.acquire("!sha1#d", 2)
    lock.release("!sha1#d")
    assert flaky.calls == ["acquire !sha1#d 2"] * 4 + ["release !sha1#d"]
    assert clock.sleeps == [0.1, 0.2, 0.4]


def test_the_counter_lock_gives_up_after_the_outage_limit():
    clock = Clock()
    lock = PatientLock(
        FlakyLock(down=1000),
        Outage("t_lock_up", "redis://h:1/10", 30, clock.sleep, lambda: clock.now),
    )
    with pytest.raises(redis.ConnectionError):
        lock.acquire("!sha1#d", 1)
    assert clock.now - 1000.0 == pytest.approx(30)


@pytest.fixture
def own_redis(own_redis_server) -> Iterator[redis.Redis]:
    """Database 10 (the converge lock's) of a Redis of this test's own, to refuse writes."""
    client = redis.Redis.from_url(own_redis_server.url(10))
    yield client
    client.close()


@pytest.mark.parametrize("how", REFUSALS)
def test_a_lock_on_a_redis_that_takes_no_writes_past_the_limit_stops_the_flow(
    own_redis, free_port, how
):
    """A Redis that takes no writes (a replica, at its ``maxmemory``, short of
    ``min-replicas-to-write``, unable to persist) for longer than the outage limit stops the
    flow, as the sink's writes do: the lock's error leaves the step, waited out once. (The step
    used to take it for the action's own error and dead-letter the action, and each action of
    its batch after it, each waiting out the limit again, while the log said the flow was
    stopping.)"""
    refuse_writes(own_redis, how, free_port)
    clock = Clock()
    outage = Outage("t_lock_ro", "redis://h:1/10", 30, clock.sleep, lambda: clock.now)
    logic = DimensionLogic(None, Runtime(PatientLock(RedisLock(own_redis, "t"), outage)))
    actions = [at(0, push(i, converge_config=WEBHOOK | {"count": 2}))[1] for i in (1, 2)]
    with pytest.raises(redis.RedisError) as refused:
        logic.on_batch([Planned(SourceRecord("a", 0, 0, b"{}"), a, plan(a)) for a in actions])
    assert unavailable(refused.value)
    assert clock.now - 1000.0 == pytest.approx(30), "waited out once"
