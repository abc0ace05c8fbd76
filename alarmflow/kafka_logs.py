"""librdkafka's log lines and error events through Python logging, one line per change.

During a broker outage every Kafka client of a process (Bytewax's consumer per partition, the
producers, admin clients) reports each reconnection attempt: over a thousand lines in half a
minute, on stderr in librdkafka's own format. Every client gets :data:`LOGGER` as its
``logger`` and :func:`on_error` as its ``error_cb`` (:func:`client_config`), and the logger's
:class:`OncePerChange` filter lets through only

- the first line of a kind (a kind is the text without the client, thread and broker names
  and without numbers, so that all clients' "Connection refused" are one kind),
- every :data:`REMIND_S` while that kind goes on, one line saying how often it came,
- once it has not come for :data:`QUIET_S`, one line saying that it stopped. That is longer
  than librdkafka's 10 s reconnect backoff and its 30 s of silence on an identical error
  (its next such line says how many it suppressed), so a broker still down is not called
  back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError

REMIND_S = 30.0
QUIET_S = 45.0
TICK_S = 1.0
SUMMARY = "kafka_summary"  # marks the filter's own lines on their records

_THREAD = re.compile(r"^\[thrd:[^\]]*\]: ")
_NAME = re.compile(r"^[^\s:]+(?::\d+)?(?:/\S+)?: ")
_NUMBER = re.compile(r"\d+")
_SUPPRESSED = re.compile(r", \d+ identical error\(s\) suppressed")


def _parts(record: logging.LogRecord) -> tuple[str, str]:
    """A librdkafka record's line to show and its kind. confluent-kafka logs ``"%s [%s] %s"``
    with the facility, the client name and librdkafka's text; :func:`on_error` the same way
    with the error's name."""
    if not (isinstance(record.args, tuple) and len(record.args) == 3):
        return record.getMessage(), kind_of(record.getMessage())
    facility, client, text = record.args
    text = _THREAD.sub("", str(text))
    return f"{facility} {text} ({client})", kind_of(text)


def kind_of(text: str) -> str:
    """What makes two messages the same kind: the text without its thread and broker names
    and with every number as ``N``."""
    text = _THREAD.sub("", text)
    while _NAME.match(text):
        text = _NAME.sub("", text, count=1)
    return _NUMBER.sub("N", _SUPPRESSED.sub("", text))


@dataclass
class _Kind:
    text: str
    level: int
    first: float
    last: float
    reminded: float
    repeats: int = 0
    total: int = 1


class OncePerChange(logging.Filter):
    """A logger filter: the first record of each kind, then a line every ``remind_s`` while
    it repeats and one when it stopped (see the module). A thread calls :meth:`tick` every
    second while some kind goes on, unless ``ticking`` is off (the caller ticks)."""

    def __init__(
        self,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        remind_s: float = REMIND_S,
        quiet_s: float = QUIET_S,
        ticking: bool = True,
    ) -> None:
        super().__init__()
        self._logger = logger
        self._clock = clock
        self._remind_s = remind_s
        self._quiet_s = quiet_s
        self._ticking = ticking
        self._kinds: dict[str, _Kind] = {}
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY, False):
            return True
        text, key = _parts(record)
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(key)
            if seen is not None:
                seen.last = now
                seen.repeats += 1
                seen.total += 1
                return False
            self._kinds[key] = _Kind(text, record.levelno, now, now, now)
            self._start_ticker()
        record.msg, record.args = "Kafka: %s", (text,)
        return True

    def tick(self) -> bool:
        """Say what repeated and what stopped; whether any kind is still going on."""
        now = self._clock()
        lines: list[tuple[int, str]] = []
        with self._lock:
            for key, kind in list(self._kinds.items()):
                if now - kind.last >= self._quiet_s:
                    del self._kinds[key]
                    if kind.total > 1:
                        lines.append(
                            (
                                logging.INFO,
                                f"Kafka: no more {kind.text!r} since {now - kind.last:.0f}s "
                                f"({kind.total} in {kind.last - kind.first:.0f}s)",
                            )
                        )
                elif now - kind.reminded >= self._remind_s and kind.repeats:
                    lines.append(
                        (
                            kind.level,
                            f"Kafka: still {kind.text!r}: {kind.repeats} more in the last "
                            f"{now - kind.reminded:.0f}s",
                        )
                    )
                    kind.reminded, kind.repeats = now, 0
            going_on = bool(self._kinds)
            if not going_on:
                self._ticker = None
        for level, line in lines:
            self._logger.log(level, "%s", line, extra={SUMMARY: True})
        return going_on

    def _start_ticker(self) -> None:
        if self._ticking and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_until_quiet, daemon=True)
            self._ticker.start()

    def _tick_until_quiet(self) -> None:
        while True:
            time.sleep(TICK_S)
            if not self.tick():
                return


LOGGER = logging.getLogger("alarmflow.kafka")
LOGGER.addFilter(OncePerChange(LOGGER))


def on_error(error: KafkaError) -> None:
    """librdkafka's error events (broker down, all brokers down, ...), as log lines of
    :data:`LOGGER`: fatal ones at ERROR, the others (librdkafka retries them) at WARNING."""
    level = logging.ERROR if error.fatal() else logging.WARNING
    LOGGER.log(level, "%s [%s] %s", error.name(), "error", error.str())


def client_config() -> dict[str, object]:
    """The part of every Kafka client's configuration that routes its logs and errors here."""
    return {"logger": LOGGER, "error_cb": on_error}
