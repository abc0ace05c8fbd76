"""No message stops a flow: every flow, on the real broker and Redis, fed hostile messages mixed
with valid ones.

For each flow, run B reads the valid messages with hostile ones (:mod:`tests.hostile.corpus` and
hypothesis-made ones) between them, and must exit 0 at end of input. Every message that can be
no flow's input is in the DLQ with a reason; no valid message is. Run C then reads exactly the
messages run B accepted, in the same order: Redis must be the same after both, so a rejected
message changed nothing (no partial write, no state it left behind), and the flow's counts add
up: consumed = accepted + rejected.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alarmflow.kafka_tools import produce, read_all
from alarmflow.launch import init_recovery
from operators.rejects import ERROR_TEXT_LIMIT, Reason
from tests.flows.flowrun import (
    FlowEnv,
    bytewax_command,
    one_partition,
    recovery_snapshots,
    run,
    snapshot_dbs,
    start,
)
from tests.hostile.corpus import duplicated_keys, invalid, mutants
from tests.hostile.profiles import PROFILES, Profile

pytestmark = pytest.mark.integration

REASONS = {str(reason) for reason in Reason}

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def generated(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Messages with the template's keys and arbitrary JSON values, or arbitrary bytes."""
    shaped = st.fixed_dictionaries({key: json_values for key in template}).map(orjson.dumps)
    return shaped | st.binary(max_size=64)


class FlowRunner:
    """Runs one profile's flow on its own topics and key prefix."""

    def __init__(
        self,
        profile: Profile,
        make_topics: Callable[..., list[str]],
        redis_url: str,
        bootstrap: str,
        prefix: str,
        name: str,
    ):
        topic, dlq, *outputs = make_topics(
            f"{name}-in", f"{name}-dlq", *(f"{name}-{o}" for o in profile.outputs)
        )
        self.profile = profile
        self.env = FlowEnv(bootstrap, redis_url, f"{prefix}{name}", {profile.kind: topic}, dlq)
        self.extra = {f"ALARMFLOW_{o}": t for o, t in zip(profile.outputs, outputs, strict=True)}
        self.topic = topic

    def environ(self) -> dict[str, str]:
        return self.env.environ(**self.extra)

    def feed(self, messages: list[bytes]) -> None:
        produce(self.env.bootstrap, self.topic, messages, key=one_partition)

    def run(self) -> dict[str, float]:
        done = run(bytewax_command(self.profile.module), self.environ())
        return counts(done.stderr)

    def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(m) for m in read_all(self.env.bootstrap, self.env.dlq_topic)]


def counts(log: str) -> dict[str, float]:
    """The flow's counters from its end-of-input line, summed over labels."""
    lines = [line for line in log.splitlines() if "end of input:" in line]
    assert lines, f"no end-of-input line in the flow's log:\n{log[-2000:]}"
    found: dict[str, float] = {}
    for name, value in re.findall(r"(\w+)(?:\[[^\]]*\])?=(\d+)", lines[-1]):
        found[name] = found.get(name, 0) + float(value)
    return found


def interleave(valid: list[bytes], hostile: list[bytes], seed: int) -> list[bytes]:
    """The valid messages in their order, hostile ones at random places between them."""
    rng = random.Random(seed)
    merged = list(valid)
    for message in hostile:
        merged.insert(rng.randrange(len(merged) + 1), message)
    return merged


@pytest.fixture
def runner(
    kafka_broker, redis_server, kafka_topics, key_prefix
) -> Callable[[Profile, str], FlowRunner]:
    def make(profile: Profile, name: str) -> FlowRunner:
        make_topics = lambda *names: kafka_topics(*names, partitions=1)  # noqa: E731
        return FlowRunner(
            profile, make_topics, redis_server.url(9), kafka_broker.bootstrap, key_prefix, name
        )

    return make


WALL_CLOCK_KEYS = ".access.run."
"""bkmonitor's ``access.run`` keys hold when a push happened, not what it was."""


def redis_content(redis_server, prefix: str) -> dict:
    dbs = {db: redis.Redis.from_url(redis_server.url(int(db))) for db in ("9", "10")}
    return snapshot_dbs(dbs, prefix, WALL_CLOCK_KEYS)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@settings(max_examples=1, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_messages_are_rejected_and_change_nothing_else(profile, data, runner, redis_server):
    valid = profile.valid_messages()
    broken = invalid(profile.template)
    extra = data.draw(st.lists(generated(profile.template), min_size=40, max_size=40))
    hostile = broken + mutants(profile.template) + [duplicated_keys(profile.template)] + extra
    messages = interleave(valid, hostile, seed=11)

    mixed = runner(profile, "mixed")
    mixed.feed(messages)
    seen = mixed.run()
    dead = mixed.dead_letters()
    rejected = {m["offset"] for m in dead}

    assert {messages.index(m) for m in broken} <= rejected, (
        "a message no flow may take was accepted"
    )
    assert not rejected & {messages.index(m) for m in valid}, "a valid message was rejected"
    assert all(m["reason"] in REASONS and len(m["error"]) <= ERROR_TEXT_LIMIT for m in dead)
    assert {m["flow"] for m in dead} == {profile.name}
    assert seen["consumed"] == len(messages)
    assert seen["rejected"] == len(dead) == len(rejected)

    accepted = [m for offset, m in enumerate(messages) if offset not in rejected]
    clean = runner(profile, "clean")
    clean.feed(accepted)
    clean.run()
    assert clean.dead_letters() == []
    assert redis_content(redis_server, clean.env.prefix) == redis_content(
        redis_server, mixed.env.prefix
    )


POISON = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_a_poison_pill_survives_kill_and_resume(profile, runner, redis_server, tmp_path):
    """The poison pill mid-topic is read, the flow is killed and resumed from its recovery
    store (which replays it): it goes on, and ends as a run without the pill."""
    valid = profile.valid_messages()
    half = len(valid) // 2

    reference = runner(profile, "reference")
    reference.feed(valid)
    reference.run()

    poisoned = runner(profile, "poisoned")
    poisoned.feed([*valid[:half], POISON])
    recovery = tmp_path / "recovery"
    init_recovery(recovery, 1)
    command = bytewax_command(profile.module, "-r", str(recovery), "-s", "1", "-b", "0")
    tailing = start(command, {**poisoned.environ(), "ALARMFLOW_TAIL": "1"}, tmp_path / "run1.log")
    deadline = time.monotonic() + 60
    while not (poisoned.dead_letters() and recovery_snapshots(recovery)):
        assert tailing.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the poison pill never reached the DLQ"
        time.sleep(0.2)
    os.kill(tailing.pid, signal.SIGKILL)
    tailing.wait()

    poisoned.feed(valid[half:])
    poisoned.run()
    assert {m["reason"] for m in poisoned.dead_letters()} == {"too_deep"}
    assert redis_content(redis_server, poisoned.env.prefix) == redis_content(
        redis_server, reference.env.prefix
    )
