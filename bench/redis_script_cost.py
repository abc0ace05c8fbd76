"""Where Redis's time goes in the alert flow's script call: Redis's own CPU per alert for the
push-once script with the flow's arguments, against a script that does only what no alert can
go without (the once-only marker and the LPUSH), and against scripts that do nothing with the
same arguments (what passing them costs). Then the marker's ``SET NX EX`` and one LPUSH alone,
in a loop inside Redis. Each row's median over alternating rounds, each round on fresh
pushes with an emptied database: always a Redis of its own (started here), so that no other
client's work counts and no one's keys are flushed.

    python -m bench.redis_script_cost [--alerts 30000] [--rounds 5]

It gives the floor under the flow's Redis cost per alert that the stack's limit
(``bench.limit_pipeline``: one LPUSH, no marker) does not have.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from alarmflow.services import RedisServer, free_port
from bench.alert_stages import sample_pushes, spec
from bench.server_cpu import redis_cpu_s
from operators import _native
from state.idempotent import OncePusher, Push
from state.keys import Backend

BATCH = 1000
LOOP = 100_000

MARKER_AND_LPUSH = """
local lists, order, results = {}, {}, {}
for i = 1, #ARGV do
  if redis.call('SET', KEYS[2 * i - 1], '1', 'NX', 'EX', 600) then
    local key = KEYS[2 * i]
    local values = lists[key]
    if values == nil then
      values = {}
      lists[key] = values
      order[#order + 1] = key
    end
    values[#values + 1] = ARGV[i]
    results[i] = 0
  else
    results[i] = -1
  end
end
for _, key in ipairs(order) do
  local values = lists[key]
  for first = 1, #values, 1000 do
    redis.call('LPUSH', key, unpack(values, first, math.min(first + 999, #values)))
  end
  redis.call('EXPIRE', key, 86400)
end
return results
"""
"""Per alert two keys (marker, list) and one argument (its JSON): the marker's SET NX EX, then
one variadic LPUSH per list."""

NOTHING = "return #KEYS + #ARGV"
"""Takes the arguments and does nothing with them."""

MARKER_LOOP = f"for i = 1, {LOOP} do redis.call('SET', ARGV[1] .. i, '1', 'NX', 'EX', 600) end"
LPUSH_LOOP = f"for i = 1, {LOOP} do redis.call('LPUSH', KEYS[1], ARGV[1]) end"


def flow_arguments(pushes: list[Push]) -> list[tuple[list, list]]:
    """The keys and arguments of the flow's script calls, in batches of :data:`BATCH`."""
    calls = []
    for start in range(0, len(pushes), BATCH):
        calls.append(_native.flatten_pushes(pushes[start : start + BATCH], {}, spec))
    return calls


def short_arguments(pushes: list[Push]) -> list[tuple[list, list]]:
    """Per alert its marker and list keys and its JSON: the arguments of
    :data:`MARKER_AND_LPUSH`."""
    calls = []
    for start in range(0, len(pushes), BATCH):
        batch = pushes[start : start + BATCH]
        keys = [key for push in batch for key in (push.marker.key, push.writes[0].key)]
        calls.append((keys, [push.writes[0].value for push in batch]))
    return calls


def rows(client: redis.Redis, count: int, rounds: int) -> list[tuple[str, float]]:
    pusher = OncePusher(client, {Backend.QUEUE: 9})
    nothing, short = client.register_script(NOTHING), client.register_script(MARKER_AND_LPUSH)

    def scripted(script: Callable, arguments: Callable[[list[Push]], list]) -> Callable:
        def run(pushes: list[Push]) -> None:
            for keys, args in arguments(pushes):
                script(keys=keys, args=args)

        return run

    cases: dict[str, Callable[[list[Push]], object]] = {
        "the push-once script, the flow's arguments": lambda pushes: [
            pusher.push(pushes[start : start + BATCH]) for start in range(0, len(pushes), BATCH)
        ],
        "marker and LPUSH only, 3 arguments per alert": scripted(short, short_arguments),
        "nothing, the flow's arguments": scripted(nothing, flow_arguments),
        "nothing, 3 arguments per alert": scripted(nothing, short_arguments),
    }
    costs: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(rounds):
        for label, run in cases.items():
            pushes = sample_pushes(count, time.time())
            client.flushdb()
            before = redis_cpu_s(client)
            run(pushes)
            costs[label].append((redis_cpu_s(client) - before) / len(pushes) * 1e6)
    loops = {
        "SET NX EX of a new marker key, in a loop inside Redis": (MARKER_LOOP, [], ["m" * 60]),
        "LPUSH of one 400-byte value, in a loop inside Redis": (LPUSH_LOOP, ["l"], ["v" * 400]),
    }
    for label, (body, keys, args) in loops.items():
        costs[label] = []
        for _ in range(rounds):
            client.flushdb()
            before = redis_cpu_s(client)
            client.eval(body, len(keys), *keys, *args)
            costs[label].append((redis_cpu_s(client) - before) / LOOP * 1e6)
    client.flushdb()
    return [(label, statistics.median(values)) for label, values in costs.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as run_dir:
        server = RedisServer(free_port(), Path(run_dir))
        server.start()
        try:
            found = rows(redis.Redis.from_url(server.url(9)), args.alerts, args.rounds)
        finally:
            server.stop()
    print(f"\nRedis's CPU µs per alert (per operation for the loops), median of {args.rounds}\n")
    print("| work | Redis CPU µs |\n|---|---:|")
    for label, micros in found:
        print(f"| {label} | {micros:.2f} |")


if __name__ == "__main__":
    main()
