"""bkmonitor's ``run_access`` command line, mapped onto alarmflow's flows and launcher.

``python -m alarmflow.run_access --access-type alert [-H process] [--hash-ring 0|1]
[--max-uptime N] [--processes N -w N -r DIR --snapshot-interval S -b S]`` runs ``flows.alert``
through ``alarmflow.launch`` (N local ``python -m bytewax.run`` processes). ``--help`` has the
whole mapping.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alarmflow import launch
from alarmflow.config import ConfigError, load_settings

PROG = "python -m alarmflow.run_access"
ACCESS_FLOWS = {
    "data": "flows.data",
    "real_time_data": "flows.real_time_data",
    "event": "flows.event",
    "alert": "flows.alert",
    "incident": "flows.incident",
    "converge": "flows.converge",
}
RING_VARIABLES = ("ALARMFLOW_HASH_RING_NODES", "ALARMFLOW_HASH_RING_NODE")

DESCRIPTION = """\
Run an alarmflow flow with bkmonitor's run_access options.

bkmonitor option          alarmflow
------------------------  --------------------------------------------------------------
--access-type T           flows.T (data, real_time_data, event, alert, incident; also
                          converge, alarmflow's converge flow, which bkmonitor runs with
                          another command). bkmonitor's `alert` type does nothing; here it
                          runs the alert flow. data and real_time_data need no hash ring.
-H process (default)      alarmflow.launch: --processes N local `python -m bytewax.run`
                          processes (1 by default) of -w threads each.
-H celery                 the same: there is no Celery; Bytewax workers (threads and
                          processes) take the place of Celery workers.
--hash-ring 1             shard by business: each deployment keeps the bk_biz_ids that
                          bkmonitor's md5 ring gives its name. The ring is static:
                          ALARMFLOW_HASH_RING_NODES (every deployment's name, comma-separated)
                          and ALARMFLOW_HASH_RING_NODE (this one's) must be set; no Consul.
--hash-ring 0             no sharding: ALARMFLOW_HASH_RING_NODES/NODE are cleared for the
                          flow. Without --hash-ring the environment decides.
--max-uptime N            stop the flow (SIGTERM to every process) after N seconds, counted
                          from this command's start, and exit 0. With -r the next start
                          resumes from the last snapshot; without it, from ALARMFLOW_START.
                          Not set by default (bkmonitor: 3600, then supervisor restarts it).
--min-interval, --max-cycles
                          accepted and ignored: they pace bkmonitor's on_start loop, which
                          access flows block in (one cycle); a Bytewax flow runs until it ends.
--pdb                     accepted and ignored: the workers run inside Bytewax's Rust
                          runtime; debug a flow in-process with bytewax.testing.run_main.
--path-prefix, --session-ttl
                          accepted and ignored: Consul registration; the ring is static here.
-s/--service-type         accepted and ignored: always `access` for run_access; the flow
                          is chosen by --access-type.

alarmflow's own options (bkmonitor's -s is --service-type, so Bytewax's -s is spelled
--snapshot-interval here): --processes, -w, -r, --snapshot-interval, -b, --base-port, and -i/-a
(one process per host of a cluster of hosts), as in `python -m alarmflow.launch`. Settings come
from ALARMFLOW_* variables (see docs/configuration.md). The bytewax command is printed on one
line before it starts.
"""


class PlanError(ValueError):
    """A flag, or a combination of flags and settings, that cannot run: one line per
    problem."""


@dataclass(frozen=True)
class Plan:
    """What a command line runs: the flow module, ``alarmflow.launch``'s arguments, environment
    overrides, the uptime limit and notes for the operator."""

    module: str
    launch_argv: tuple[str, ...]
    env: Mapping[str, str]
    max_uptime: int | None
    notes: tuple[str, ...]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bk = parser.add_argument_group("bkmonitor's run_access options")
    bk.add_argument("--access-type", required=True, choices=list(ACCESS_FLOWS))
    bk.add_argument("-H", "--handler-type", choices=("process", "celery"), default="process")
    bk.add_argument("--hash-ring", choices=("0", "1"))
    bk.add_argument("--max-uptime", type=int, help="seconds (not set: run until the flow ends)")
    bk.add_argument("--min-interval", type=int, help="ignored")
    bk.add_argument("--max-cycles", type=int, help="ignored")
    bk.add_argument("--pdb", type=int, help="ignored")
    bk.add_argument("--path-prefix", help="ignored")
    bk.add_argument("--session-ttl", type=int, help="ignored")
    bk.add_argument("-s", "--service-type", help="ignored")
    own = parser.add_argument_group("alarmflow's launcher options")
    own.add_argument("--processes", type=int, default=1, help="local processes (1)")
    own.add_argument("-w", "--workers-per-process", type=int, default=1, help="threads (1)")
    own.add_argument("-r", "--recovery-directory", type=Path, help="Bytewax recovery dir")
    own.add_argument("--snapshot-interval", type=int, help="whole seconds (5), needs -r")
    own.add_argument("-b", "--backup-interval", type=int, help="whole seconds (30), needs -r")
    own.add_argument("--base-port", type=int, help="first port of the process mesh (2101)")
    own.add_argument("-i", "--process-id", type=int, help="this host's place in -a (hosts)")
    own.add_argument("-a", "--addresses", help='every host\'s "host:port", ";"-separated')
    return parser


IGNORED = ("min_interval", "max_cycles", "pdb", "path_prefix", "session_ttl", "service_type")


def plan(argv: list[str], environ: Mapping[str, str]) -> Plan:
    """Map run_access flags (and the ``ALARMFLOW_*`` settings in ``environ``) onto a launch;
    raise :class:`PlanError` with one clear sentence when they cannot run."""
    args = parser().parse_args(argv)
    if args.processes < 1 or args.workers_per_process < 1:
        raise PlanError("--processes and -w must be at least 1")
    if args.max_uptime is not None and args.max_uptime < 1:
        raise PlanError("--max-uptime must be at least 1 second")
    if args.recovery_directory is None and (
        args.snapshot_interval is not None or args.backup_interval is not None
    ):
        raise PlanError("--snapshot-interval and -b need a recovery directory (-r DIR)")
    module = ACCESS_FLOWS[args.access_type]
    notes = []
    if args.handler_type == "celery":
        notes.append("-H celery: no Celery in alarmflow; Bytewax workers do that work")
    notes += [
        f"--{name.replace('_', '-')} is accepted and ignored (see --help)"
        for name in IGNORED
        if getattr(args, name) is not None
    ]
    env: dict[str, str] = {}
    if args.hash_ring == "0":
        env = dict.fromkeys(RING_VARIABLES, "")
    elif args.hash_ring == "1":
        notes.append(_ring_note(environ))
    launch_argv = [module, "-p", str(args.processes), "-w", str(args.workers_per_process)]
    if args.recovery_directory is not None:
        launch_argv += ["-r", str(args.recovery_directory)]
        if args.snapshot_interval is not None:
            launch_argv += ["-s", str(args.snapshot_interval)]
        if args.backup_interval is not None:
            launch_argv += ["-b", str(args.backup_interval)]
    if args.base_port is not None:
        launch_argv += ["--base-port", str(args.base_port)]
    if args.process_id is not None:
        launch_argv += ["-i", str(args.process_id)]
    if args.addresses is not None:
        launch_argv += ["-a", args.addresses]
    return Plan(module, tuple(launch_argv), env, args.max_uptime, tuple(notes))


def _ring_note(environ: Mapping[str, str]) -> str:
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        lines = [f"--hash-ring 1: {line}" for line in str(exc).splitlines()]
        raise PlanError("\n".join(lines)) from None
    if not settings.hash_ring_nodes:
        raise PlanError(
            "--hash-ring 1 needs ALARMFLOW_HASH_RING_NODES (every deployment's name, "
            "comma-separated) and ALARMFLOW_HASH_RING_NODE (this deployment's name)"
        )
    return (
        f"hash ring: this deployment is {settings.hash_ring_node!r} of "
        f"{','.join(settings.hash_ring_nodes)}; it keeps the businesses the ring gives it"
    )


def command_line(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    """The bytewax command the launcher runs, on one line."""
    command, process_env = launch.commands(args)[0]
    line = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(command)])
    if args.addresses is not None:
        line += f"  # host {args.process_id}, BYTEWAX_ADDRESSES={args.addresses}"
    elif args.processes > 1:
        line += (
            f"  # x{args.processes} processes, BYTEWAX_PROCESS_ID=0..{args.processes - 1} "
            f"BYTEWAX_ADDRESSES={process_env['BYTEWAX_ADDRESSES']}"
        )
    return line


def main(argv: list[str] | None = None) -> int:
    try:
        the_plan = plan(sys.argv[1:] if argv is None else argv, os.environ)
    except PlanError as exc:
        for line in str(exc).splitlines():
            print(f"{PROG}: error: {line}", file=sys.stderr)
        return 2
    if not launch.module_exists(the_plan.module):
        print(f"{PROG}: error: {the_plan.module} is not in this checkout", file=sys.stderr)
        return 2
    for note in the_plan.notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    os.environ.update(the_plan.env)
    args = launch.parse_args(list(the_plan.launch_argv))
    print(command_line(args, the_plan.env), flush=True)
    return launch.run(args, the_plan.max_uptime)


if __name__ == "__main__":
    raise SystemExit(main())
