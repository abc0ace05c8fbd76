"""Local Kafka, Redis and Prometheus for the demo, the benchmarks and the tests.

``python -m alarmflow.services up|down|status`` (``scripts/services``) manages the ones the
demo uses; the tests start their own on free ports.
"""

from alarmflow.services._process import (
    ServiceError,
    consecutive_free_ports,
    free_port,
    free_ports,
    port_open,
)
from alarmflow.services.kafka import KafkaBroker, ensure_cds_archive, ensure_jars
from alarmflow.services.prometheus import (
    PrometheusServer,
    promtool,
)
from alarmflow.services.redis import RedisServer

__all__ = [
    "KafkaBroker",
    "PrometheusServer",
    "RedisServer",
    "ServiceError",
    "consecutive_free_ports",
    "ensure_cds_archive",
    "ensure_jars",
    "free_port",
    "free_ports",
    "port_open",
    "promtool",
]
