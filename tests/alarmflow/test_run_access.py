"""run_access's flag mapping (a pure function), and the command on the real broker and Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import orjson
import pytest
import redis

from alarmflow import launch
from alarmflow.event_samples import by_host, sample_events
from alarmflow.kafka_tools import produce
from alarmflow.run_access import ACCESS_FLOWS, PROG, PlanError, command_line, main, plan
from alarmflow.samples import sample_messages
from bench.converge_throughput import by_dimension, storm
from bench.real_time_data_throughput import points
from tests.flows.flowrun import REPO, bytewax_command, run, snapshot_dbs
from tests.flows.test_alert import normalised, with_prefix
from tests.flows.test_incident import MESSAGES, by_incident, document

RING = {"ALARMFLOW_HASH_RING_NODES": "a,b", "ALARMFLOW_HASH_RING_NODE": "b"}


@pytest.mark.parametrize("access_type", ["data", "real_time_data", "event", "alert", "incident"])
def test_every_bkmonitor_access_type_runs_its_flow_module(access_type):
    the_plan = plan(["--access-type", access_type], {})
    assert the_plan.module == f"flows.{access_type}"
    assert the_plan.launch_argv == (f"flows.{access_type}", "-p", "1", "-w", "1")
    assert (the_plan.env, the_plan.max_uptime, the_plan.notes) == ({}, None, ())


def test_converge_is_alarmflows_extra_type():
    assert ACCESS_FLOWS["converge"] == "flows.converge"
    assert plan(["--access-type", "converge"], {}).module == "flows.converge"


def test_launcher_options_pass_through_with_a_long_snapshot_option():
    argv = ["--access-type", "event", "--processes", "2", "-w", "3", "-r", "/tmp/rec"]
    argv += ["--snapshot-interval", "2", "-b", "10", "--base-port", "3100", "--max-uptime", "60"]
    the_plan = plan(argv, {})
    assert the_plan.launch_argv == (
        "flows.event", "-p", "2", "-w", "3", "-r", "/tmp/rec", "-s", "2", "-b", "10",
        "--base-port", "3100",
    )  # fmt: skip
    assert the_plan.max_uptime == 60


def test_celery_and_the_consul_and_loop_options_are_accepted_with_a_note():
    argv = ["--access-type", "alert", "-H", "celery", "-s", "access", "--min-interval", "1"]
    argv += ["--max-cycles", "1000", "--pdb", "0", "--path-prefix", "x", "--session-ttl", "60"]
    the_plan = plan(argv, {})
    assert the_plan.launch_argv == ("flows.alert", "-p", "1", "-w", "1")
    assert "no Celery" in the_plan.notes[0]
    ignored = " ".join(the_plan.notes[1:])
    for flag in ("--min-interval", "--max-cycles", "--pdb", "--path-prefix", "--session-ttl"):
        assert f"{flag} is accepted and ignored" in ignored
    assert "--service-type is accepted and ignored" in ignored


def test_hash_ring_1_names_this_deployment():
    the_plan = plan(["--access-type", "alert", "--hash-ring", "1"], RING)
    assert the_plan.env == {}
    assert the_plan.notes == (
        "hash ring: this deployment is 'b' of a,b; it keeps the businesses the ring gives it",
    )


def test_hash_ring_0_turns_sharding_off_for_the_flow():
    the_plan = plan(["--access-type", "alert", "--hash-ring", "0"], RING)
    assert the_plan.env == {"ALARMFLOW_HASH_RING_NODES": "", "ALARMFLOW_HASH_RING_NODE": ""}


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--hash-ring", "1"], {}, "--hash-ring 1 needs ALARMFLOW_HASH_RING_NODES"),
        (
            ["--hash-ring", "1"],
            {**RING, "ALARMFLOW_HASH_RING_NODE": "c"},
            "--hash-ring 1: ALARMFLOW_HASH_RING_NODE='c': expected this deployment's name",
        ),
        (["--processes", "0"], {}, "--processes and -w must be at least 1"),
        (["--max-uptime", "0"], {}, "--max-uptime must be at least 1 second"),
        (["--snapshot-interval", "1"], {}, "need a recovery directory (-r DIR)"),
    ],
)
def test_bad_combinations_are_refused_with_one_sentence(argv, environ, message):
    with pytest.raises(PlanError) as error:
        plan(["--access-type", "alert", *argv], environ)
    assert message in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_every_line_of_a_multi_line_refusal_has_the_prefix(monkeypatch, capsys):
    monkeypatch.setenv("ALARMFLOW_DEDUP_TTL", "0")
    monkeypatch.setenv("ALARMFLOW_START", "x")

    assert main(["--access-type", "alert", "--hash-ring", "1"]) == 2

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{PROG}: error: --hash-ring 1: ALARMFLOW_") for line in lines)


def test_a_recovery_directory_that_cannot_be_made_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "recovery"
    a_file.write_text("")

    assert main(["--access-type", "alert", "-r", str(a_file)]) == 2

    assert capsys.readouterr().err.splitlines() == [
        f"alarmflow.launch: cannot start: recovery directory {a_file}: File exists"
    ]


@pytest.mark.parametrize(
    "argv", [[], ["--access-type", "action"], ["--access-type", "alert", "-H", "thread"]]
)
def test_unknown_or_missing_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        plan(argv, {})
    assert exit_.value.code == 2
    assert "python -m alarmflow.run_access: error:" in capsys.readouterr().err


def run_access(*args: str) -> list[str]:
    return [sys.executable, "-m", "alarmflow.run_access", *args]


@pytest.mark.integration
def test_run_access_alert_writes_what_the_alert_flow_writes(flow_env):
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], sample_messages(300, int(time.time())))
    direct = with_prefix(flow_env, flow_env.prefix + "direct")
    run(bytewax_command("flows.alert"), direct.environ())
    client = redis.Redis.from_url(flow_env.redis_url)

    done = run(run_access("--access-type", "alert", "-H", "process"), flow_env.environ())

    printed = done.stdout.strip().splitlines()
    assert printed == [f"{sys.executable} -m bytewax.run flows.alert -w 1"]
    expected = normalised(client, direct.prefix)
    assert any(".access.alert." in key for key in expected)
    assert normalised(client, flow_env.prefix) == expected


@pytest.mark.integration
def test_run_access_incident_keeps_incident_documents(make_flow_env):
    env = make_flow_env(3, "INCIDENT")
    produce(env.bootstrap, env.topics["INCIDENT"], [orjson.dumps(m) for m in MESSAGES], by_incident)

    run(run_access("--access-type", "incident", "-H", "celery"), env.environ())

    client = redis.Redis.from_url(env.redis_url)
    assert document(client, env.prefix, 7001)["status"] == "recovered"
    assert document(client, env.prefix, 7003)["status"] == "recovering"
    assert document(client, env.prefix, 7004)["level"] == "WARN"


@pytest.mark.integration
def test_max_uptime_stops_a_tailing_flow(flow_env):
    started = time.monotonic()
    done = subprocess.run(
        run_access("--access-type", "alert", "--max-uptime", "3"),
        env=flow_env.environ(ALARMFLOW_TAIL="1"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert 3 <= elapsed < 20


def test_the_printed_command_shows_overrides_and_the_process_mesh():
    the_plan = plan(["--access-type", "alert", "--hash-ring", "0", "--processes", "2"], {})
    args = launch.parse_args(list(the_plan.launch_argv))
    assert command_line(args, the_plan.env) == (
        f"ALARMFLOW_HASH_RING_NODES='' ALARMFLOW_HASH_RING_NODE='' {sys.executable} -m bytewax.run"
        " flows.alert -w 1  # x2 processes, BYTEWAX_PROCESS_ID=0..1"
        " BYTEWAX_ADDRESSES=127.0.0.1:2101;127.0.0.1:2102"
    )


@pytest.mark.integration
def test_after_max_uptime_the_next_start_resumes_from_recovery(flow_env, tmp_path):
    now = int(time.time())
    first, later = list(sample_messages(400, now, seed=3)), list(sample_messages(100, now, seed=4))
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], first)
    recovery = ["-r", str(tmp_path / "recovery"), "--snapshot-interval", "1", "-b", "0"]
    tailing = flow_env.environ(ALARMFLOW_TAIL="1")
    run(run_access("--access-type", "alert", "--max-uptime", "8", *recovery), tailing)
    produce(flow_env.bootstrap, flow_env.topics["ALERT"], later)

    # From "latest" a fresh start would read nothing: only the recovered offsets reach `later`.
    run(run_access("--access-type", "alert", *recovery), flow_env.environ(ALARMFLOW_START="latest"))

    reference = with_prefix(flow_env, flow_env.prefix + "ref")
    run(bytewax_command("flows.alert"), reference.environ())
    client = redis.Redis.from_url(flow_env.redis_url)
    assert normalised(client, flow_env.prefix) == normalised(client, reference.prefix)


def _samples(kind: str) -> tuple[list[bytes], Callable[[bytes], bytes] | None]:
    now = int(time.time())
    if kind == "EVENT":
        return list(sample_events(300, now)), by_host
    if kind == "ACTION":
        return [orjson.dumps(a) for a in storm(200, now - 3600)], by_dimension
    return list(points(300, now)), None


@pytest.mark.integration
@pytest.mark.parametrize("access_type", ["event", "real_time_data", "data", "converge"])
def test_run_access_writes_what_bytewax_run_writes(
    access_type, make_flow_env, kafka_topics, redis_server
):
    kind = "ACTION" if access_type == "converge" else access_type.upper()
    env = make_flow_env(3, kind)
    messages, key = _samples(kind)
    produce(env.bootstrap, env.topics[kind], messages, key)
    decisions, audit = kafka_topics("decisions", "audit", partitions=1)
    outputs = {"ALARMFLOW_DECISION_TOPIC": decisions, "ALARMFLOW_AUDIT_TOPIC": audit}
    direct = with_prefix(env, env.prefix + "direct")
    run(bytewax_command(f"flows.{access_type}"), direct.environ(**outputs))

    run(run_access("--access-type", access_type), env.environ(**outputs))

    clients = {db: redis.Redis.from_url(redis_server.url(n)) for db, n in (("q", 9), ("s", 10))}
    expected = snapshot_dbs(clients, direct.prefix, skip="access.run.")
    assert len(expected) >= 10
    assert snapshot_dbs(clients, env.prefix, skip="access.run.") == expected


def test_hosts_of_a_cluster_pass_through_as_process_id_and_addresses():
    hosts = "10.0.0.1:2101;10.0.0.2:2101;10.0.0.3:2101"
    the_plan = plan(["--access-type", "alert", "-r", "/rec", "-i", "2", "-a", hosts], {})
    assert the_plan.launch_argv == (
        "flows.alert", "-p", "1", "-w", "1", "-r", "/rec", "-i", "2", "-a", hosts,
    )  # fmt: skip
    args = launch.parse_args(list(the_plan.launch_argv))
    assert command_line(args, the_plan.env).endswith(f"  # host 2, BYTEWAX_ADDRESSES={hosts}")
