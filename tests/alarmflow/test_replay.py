"""Replay a topic from an offset or a time into a separate prefix, on the real broker and Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

import orjson
import pytest
import redis

from alarmflow import replay as replay_module
from alarmflow.config import load_settings
from alarmflow.kafka_tools import produce, read_all
from alarmflow.replay import TAIL_LINES, FlowLog, consumed_in, messages_to_read, parse_args
from alarmflow.report import snapshot
from bench.converge_throughput import storm
from tests.flows.flowrun import REPO, FlowEnv

pytestmark = pytest.mark.integration


def alerts(first: int, count: int) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "event_id": f"e{i}",
                "plugin_id": "p",
                "alert_name": "CPU usage high",
                "bk_biz_id": 2,
                "time": int(time.time()),
            }
        )
        for i in range(first, first + count)
    ]


def replay(env: FlowEnv, *args: str, flow: str = "flows.alert") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alarmflow.replay", flow, *args],
        env=env.environ(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def last_bar(stderr: str) -> str:
    """The progress bar as it was last drawn (text mode reads each carriage return as a line
    end)."""
    return [line for line in stderr.splitlines() if line.startswith("[")][-1]


def replayed_ids(client: redis.Redis, prefix: str) -> set[str]:
    lists = [e.content for k, e in snapshot(client, prefix).items() if ".access.alert.101." in k]
    return {orjson.loads(entry)["event_id"] for entries in lists for entry in entries}


def test_replay_from_a_time_or_an_offset_writes_only_what_follows(
    kafka_broker, redis_server, make_flow_env
):
    env = make_flow_env(1)
    stem = env.prefix.split(".")[0]
    produce(kafka_broker.bootstrap, env.topics["ALERT"], alerts(0, 30))
    time.sleep(1.5)
    cut = int(time.time())
    time.sleep(1.5)
    produce(kafka_broker.bootstrap, env.topics["ALERT"], alerts(30, 20))
    client = redis.Redis.from_url(redis_server.url(9))

    by_time = replay(env, "--prefix", f"{stem}t.ee", "--from-time", str(cut))
    by_offset = replay(env, "--prefix", f"{stem}o.ee", "--from-offset", "45")

    assert by_time.returncode == 0, by_time.stderr
    # The last bar shows what the flow says it consumed, not the count it was to read.
    assert last_bar(by_time.stderr).startswith(f"[{'#' * 30}] 100% 20/20 messages")
    assert "consumed[" in by_time.stdout
    assert replayed_ids(client, f"{stem}t.ee") == {f"e{i}" for i in range(30, 50)}
    assert by_offset.returncode == 0, by_offset.stderr
    assert replayed_ids(client, f"{stem}o.ee") == {f"e{i}" for i in range(45, 50)}
    assert snapshot(client, env.prefix) == {}


def test_replay_refuses_the_live_prefix(flow_env):
    done = replay(flow_env, "--prefix", flow_env.prefix, "--from-beginning")
    assert done.returncode == 2
    assert "must differ from the live prefix" in done.stderr


def test_a_replay_logging_more_than_a_pipe_buffer_of_warnings_finishes(
    kafka_broker, redis_server, make_flow_env
):
    """1,500 malformed messages among valid ones: every one is counted and the bar ends at what
    the flow read. (Their warnings are rate-limited now; the next test writes the log that
    would fill the pipe.)"""
    env = make_flow_env(1)
    stem = env.prefix.split(".")[0]
    malformed = [b"{malformed %d" % i for i in range(1500)]
    produce(kafka_broker.bootstrap, env.topics["ALERT"], malformed + alerts(0, 20))

    done = replay(env, "--prefix", f"{stem}m.ee", "--from-beginning")

    assert done.returncode == 0, done.stderr[-3000:]
    assert last_bar(done.stderr).startswith(f"[{'#' * 30}] 100% 1,520/1,520 messages")
    assert "rejected[not_json]=1500" in done.stdout
    client = redis.Redis.from_url(redis_server.url(9))
    assert replayed_ids(client, f"{stem}m.ee") == {f"e{i}" for i in range(20)}


def test_a_failed_replay_shows_what_was_read_not_a_full_bar(flow_env, tmp_path):
    """The flow fails at its own start (a metrics targets directory it cannot make), after the
    replay's checks passed."""
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], alerts(0, 5))
    stem = flow_env.prefix.split(".")[0]
    a_file = tmp_path / "targets.json"
    a_file.write_text("[]")
    env = replace(flow_env, settings=(("ALARMFLOW_METRICS_TARGETS_DIR", str(a_file)),))

    done = replay(env, "--prefix", f"{stem}f.ee", "--from-beginning")

    assert done.returncode != 0
    assert " 0/5 messages" in last_bar(done.stderr)


def test_a_topic_the_flow_uses_missing_on_kafka_stops_the_replay_in_one_line(flow_env):
    stem = flow_env.prefix.split(".")[0]
    env = replace(flow_env, dlq_topic="no-such-dlq")

    done = replay(env, "--prefix", f"{stem}f.ee", "--from-beginning")

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"alarmflow.replay: cannot start: Kafka at {flow_env.bootstrap} (PLAINTEXT): "
        "no topic named 'no-such-dlq'"
    ]


@pytest.mark.parametrize(
    ("flow", "where", "message"),
    [
        ("flows.nope", "--from-beginning", "argument flow: invalid choice: 'flows.nope'"),
        ("flows.alert", f"--from-offset={2**63}", "--from-offset must be an offset from 0 to"),
        ("flows.alert", "--from-offset=-1", "--from-offset must be an offset from 0 to"),
    ],
)
def test_an_unknown_flow_or_an_offset_kafka_cannot_have_is_a_usage_error(
    flow, where, message, capsys
):
    with pytest.raises(SystemExit) as exited:
        parse_args([flow, "--prefix", "p", where])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_only_a_start_at_a_time_looks_offsets_up_by_time(make_flow_env, monkeypatch):
    flow_env = make_flow_env(1)
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], alerts(0, 6))

    def no_lookup(*_args: object) -> int:
        raise AssertionError("offset_at called")

    monkeypatch.setattr(replay_module, "offset_at", no_lookup)
    topics = tuple(flow_env.topics.values())
    for start, to_read in (("earliest", 6), ("offset:1", 5), (f"offset:{2**63 - 1}", 0)):
        settings = load_settings(flow_env.environ(ALARMFLOW_START=start))
        assert messages_to_read(settings, topics) == to_read


def test_a_converge_replay_reads_the_action_topics_into_topics_of_its_own(
    make_flow_env, kafka_topics
):
    env = make_flow_env(1, "ACTION")
    stem = env.prefix.split(".")[0]
    actions = [orjson.dumps(action) for action in storm(40)]
    produce(env.bootstrap, env.topics["ACTION"], actions)
    decisions, audit = kafka_topics("replay-decisions", "replay-audit", partitions=1)

    refused = replay(env, "--prefix", f"{stem}c.ee", "--from-beginning", flow="flows.converge")
    done = replay(
        env,
        "--prefix",
        f"{stem}c.ee",
        "--from-beginning",
        "--decision-topic",
        decisions,
        "--audit-topic",
        audit,
        flow="flows.converge",
    )

    assert refused.returncode == 2 and "--decision-topic must name a topic" in refused.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(actions)}/{len(actions)} messages" in last_bar(done.stderr)
    assert read_all(env.bootstrap, decisions)


def test_the_flow_log_is_read_while_the_flow_runs_however_much_it_writes():
    """1 MiB of log, far more than the 64 KiB a pipe holds: a reader that waited for the exit
    would never see it, the writer blocking on the full pipe."""
    writer = (
        "import sys\n"
        "for i in range(10_000): print('x' * 100, i, file=sys.stderr)\n"
        "print('... INFO flows.redis_sink: end of input: alert: consumed[t]=3', file=sys.stderr)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", writer], stderr=subprocess.PIPE, text=True
    ) as proc:
        log = FlowLog(proc.stderr)
        assert proc.wait(30) == 0
        log.join()

    assert log.summary == ["alert: consumed[t]=3"]
    assert consumed_in(log.summary) == 3
    assert len(log.tail) == TAIL_LINES and log.tail[-2].endswith(" 9999")
