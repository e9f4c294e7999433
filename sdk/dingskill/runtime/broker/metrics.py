"""Broker metrics, registered in a service's own registry (its ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["BrokerMetrics", "BROKER_METRIC_NAMES"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

BROKER_METRIC_NAMES = (
    "dingskill_broker_published_total",
    "dingskill_broker_publish_failures_total",
    "dingskill_broker_publish_seconds",
    "dingskill_broker_deliveries_total",
    "dingskill_broker_redeliveries_total",
    "dingskill_broker_retries_total",
    "dingskill_broker_dead_letters_total",
    "dingskill_broker_queue_depth",
    "dingskill_broker_consumers",
    "dingskill_broker_connected",
    "dingskill_broker_shards_active",
)


class BrokerMetrics:
    """Broker counters and gauges. With several processes in one multiprocess directory
    (:mod:`dingskill.runtime.metrics_multiproc`): queue depth and consumer count are the last
    reading of any live process (all read the same broker), connected is 1 only if every live
    process is, active shards add up. Outside that mode the modes change nothing, but the
    ``livemostrecent`` gauges only accept ``set`` (not ``inc``/``dec``)."""

    def __init__(self, registry) -> None:
        r = registry
        self.published = Counter(
            "dingskill_broker_published_total",
            "Messages confirmed by the broker",
            ["queue"],
            registry=r,
        )
        self.publish_failures = Counter(
            "dingskill_broker_publish_failures_total",
            "Publishes the broker did not confirm (the platform gets no ACK)",
            registry=r,
        )
        self.publish_latency = Histogram(
            "dingskill_broker_publish_seconds",
            "From publish to the broker's confirm (the platform is ACKed after it)",
            buckets=_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "dingskill_broker_deliveries_total", "Messages received from the broker", registry=r
        )
        self.redeliveries = Counter(
            "dingskill_broker_redeliveries_total",
            "Messages the broker delivered again (a consumer died or gave them back)",
            registry=r,
        )
        self.retries = Counter(
            "dingskill_broker_retries_total", "Failed attempts sent to a back-off queue", registry=r
        )
        self.dead_letters = Counter(
            "dingskill_broker_dead_letters_total",
            "Messages moved to the dead-letter queue",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "dingskill_broker_queue_depth",
            "Ready messages in a queue",
            ["queue"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.consumers = Gauge(
            "dingskill_broker_consumers",
            "Live consumers (workers, audit writers)",
            ["role"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.connected = Gauge(
            "dingskill_broker_connected",
            "1 while the broker connection is open",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.shards_active = Gauge(
            "dingskill_broker_shards_active",
            "Shards this worker is delivering",
            registry=r,
            multiprocess_mode="livesum",
        )
