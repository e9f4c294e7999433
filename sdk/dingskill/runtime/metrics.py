"""Prometheus metrics of the runtime (its own registry, plus process CPU and memory).

With ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes, see
:mod:`dingskill.runtime.metrics_multiproc`), :meth:`Metrics.render` sums every worker's
metrics; the ``process_*`` figures stay those of the rendering process.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from dingskill.runtime.metrics_multiproc import AllWorkers, multiprocess_dir, worker_exited

__all__ = ["Metrics", "METRIC_NAMES", "worker_exited"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

METRIC_NAMES = (
    "dingskill_message_latency_seconds",
    "dingskill_messages_total",
    "dingskill_skill_calls_total",
    "dingskill_skill_failures_total",
    "dingskill_skill_latency_seconds",
    "dingskill_rate_limited_total",
    "dingskill_reply_retries_total",
    "dingskill_reply_failures_total",
    "dingskill_inflight_messages",
    "dingskill_skills_loaded",
    "dingskill_duplicates_total",
    "dingskill_access_denied_total",
    "dingskill_event_loop_lag_seconds",
    "dingskill_baseline_alerts_total",
    "dingskill_messages_shed_total",
    "dingskill_understanding_cache_total",
    "dingskill_understanding_queue",
    "dingskill_understanding_batch_size",
    "dingskill_understanding_batch_seconds",
    "dingskill_undelivered_replies_total",
    "dingskill_openapi_throttled_total",
)


class Metrics:
    """The runtime's metrics. Gauges carry a ``multiprocess_mode`` (used only with several
    worker processes): ``livesum`` for what each worker holds, ``livemax`` for what they
    all share."""

    def __init__(self) -> None:
        directory = multiprocess_dir()  # before any metric: a bad directory fails here
        self._all_workers: CollectorRegistry | None = None
        if directory is not None:
            self._all_workers = CollectorRegistry()
            self._all_workers.register(AllWorkers(directory))
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        self.latency = Histogram(
            "dingskill_message_latency_seconds",
            "Message latency from receipt to reply sent",
            ["channel"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.messages = Counter(
            "dingskill_messages_total", "Messages handled", ["channel", "outcome"], registry=r
        )
        self.skill_calls = Counter(
            "dingskill_skill_calls_total", "Responses executed per skill", ["skill"], registry=r
        )
        self.skill_failures = Counter(
            "dingskill_skill_failures_total", "Failed responses per skill", ["skill"], registry=r
        )
        self.skill_latency = Histogram(
            "dingskill_skill_latency_seconds",
            "Skill response time",
            ["skill"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "dingskill_rate_limited_total", "Messages over a rate limit", ["scope"], registry=r
        )
        self.reply_retries = Counter(
            "dingskill_reply_retries_total", "Reply attempts retried", registry=r
        )
        self.reply_failures = Counter(
            "dingskill_reply_failures_total", "Replies that failed after retries", registry=r
        )
        self.inflight = Gauge(
            "dingskill_inflight_messages",
            "Messages being processed",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.skills_loaded = Gauge(
            "dingskill_skills_loaded", "Skills loaded", registry=r, multiprocess_mode="livemax"
        )
        self.duplicates = Counter(
            "dingskill_duplicates_total", "Redelivered messages ignored", registry=r
        )
        self.denied = Counter(
            "dingskill_access_denied_total", "Refused operator actions", registry=r
        )
        self.baseline_alerts = Counter(
            "dingskill_baseline_alerts_total",
            "Actors departing from their behaviour baseline",
            ["kind"],
            registry=r,
        )
        self.shed = Counter(
            "dingskill_messages_shed_total",
            "Messages answered 'busy, please retry' (classification queue full, conversation busy)",
            ["channel"],
            registry=r,
        )
        self.turn_waits = Counter(
            "dingskill_turn_waits_total",
            "Turns that waited for their conversation's previous turn in another process",
            registry=r,
        )
        self.understand_cache = Counter(
            "dingskill_understanding_cache_total",
            "Utterance encodings found in the encoder's cache (hit) or computed (miss)",
            ["result"],
            registry=r,
        )
        self.understand_queue = Gauge(
            "dingskill_understanding_queue",
            "Messages waiting for (or in) a batched encoder forward pass",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.understand_batch = Histogram(
            "dingskill_understanding_batch_size",
            "Utterances per batched encoder forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.understand_seconds = Histogram(
            "dingskill_understanding_batch_seconds",
            "Time of one batched encoder forward pass (in a classification thread)",
            buckets=_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "dingskill_event_loop_lag_seconds",
            "How late the event loop ran a 10 ms timer (stalls delay every message in flight)",
            buckets=_BUCKETS,
            registry=r,
        )

        self.card_deliveries = Counter(
            "dingskill_card_deliveries_total",
            "Cards sent (kind ai|interactive; outcome ok|fallback: answered by webhook instead)",
            ["kind", "outcome"],
            registry=r,
        )
        self.openapi_messages = Counter(
            "dingskill_openapi_messages_total",
            "Robot OpenAPI messages (purpose reply|notify; outcome ok|failed|refused)",
            ["purpose", "outcome"],
            registry=r,
        )
        self.undelivered = Counter(
            "dingskill_undelivered_replies_total",
            "Replies that reached nobody, by reason (see runtime.delivery.Undelivered)",
            ["reason"],
            registry=r,
        )
        self.openapi_throttled = Counter(
            "dingskill_openapi_throttled_total",
            "OpenAPI calls the platform throttled (403 QpsLimitForAppkeyAndApi), then retried",
            registry=r,
        )
        self.events = Counter(
            "dingskill_events_total",
            "EVENT frames handed to skills",
            ["type", "outcome"],
            registry=r,
        )
        self.card_callbacks = Counter(
            "dingskill_card_callbacks_total", "Card button clicks", ["outcome"], registry=r
        )

    def render(self) -> bytes:
        """The text exposition: this process's registry, or every worker's metrics summed."""
        registry = self.registry if self._all_workers is None else self._all_workers
        return generate_latest(registry)
