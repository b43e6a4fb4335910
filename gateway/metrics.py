"""Prometheus metrics, one registry per running gateway so tests can run several side by side."""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # the client library's own: process_* (CPU, memory, open files), python_info, python_gc_*
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        self.webhooks = Counter("gateway_webhooks_received_total",
                                "Webhook deliveries by connector and result",
                                ["connector", "result"], registry=r)
        self.inbox_depth = Gauge("gateway_inbox_depth", "Inbox events not yet processed",
                                 registry=r)
        self.inbox_oldest_age = Gauge("gateway_inbox_oldest_age_seconds",
                                      "Age of the oldest unprocessed inbox event", registry=r)
        self.dead_letters = Gauge("gateway_dead_letters",
                                  "Dead letters waiting for a person, by source (inbox: events"
                                  " that could not be applied; outbox: messages that could not"
                                  " be delivered)", ["source"], registry=r)
        self.inbox_processed = Counter("gateway_inbox_events_total",
                                       "Inbox events handled by connector and result",
                                       ["connector", "result"], registry=r)
        self.polls = Counter("gateway_polls_total", "Polls by connector and result",
                             ["connector", "result"], registry=r)
        self.partner_requests = Counter("gateway_partner_requests_total",
                                        "Requests to partners by connector and status",
                                        ["connector", "status"], registry=r)
        self.poll_requests = Histogram(
            "gateway_poll_requests", "Requests to the partner per feed run (for connectors"
            " that count them)", ["connector", "feed"],
            buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000), registry=r)
        self.partner_429 = Counter("gateway_partner_rate_limited_total",
                                   "429 answers from partners", ["connector"], registry=r)
        self.outbox_sent = Counter("gateway_outbox_messages_total",
                                   "Outbound messages by destination and result",
                                   ["destination", "result"], registry=r)
        self.outbox_pending = Gauge("gateway_outbox_pending", "Outbound messages not yet sent",
                                    registry=r)
        self.outbox_oldest_pending_age = Gauge(
            "gateway_outbox_oldest_pending_age_seconds",
            "Age of the oldest unsent message to each destination that is due or retrying"
            " (a push delayed by design counts once its time has come)",
            ["destination"], registry=r)
        self.feed_last_success = Gauge(
            "gateway_feed_last_success_timestamp_seconds",
            "When each feed last polled successfully (Unix time; absent: never)",
            ["connector", "feed"], registry=r)
        self.intake_batch = Histogram("gateway_intake_commit_batch_size",
                                      "Webhook events stored by one durable commit",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                                      registry=r)
        # Which replica this is, and what it holds: with several on one database, each one's
        # /metrics says which leases are its own.
        self.replica = Gauge("gateway_replica", "This process, by the owner id its claims carry",
                             ["owner"], registry=r)
        self.claims_held = Gauge("gateway_claims_held",
                                 "Inbox events / outbox messages this process holds a lease on",
                                 ["queue"], registry=r)
        self.feed_leases_held = Gauge("gateway_feed_leases_held",
                                      "Feed runs this process holds the lease of", registry=r)
        self.reconcile_seconds = Histogram("gateway_reconcile_duration_seconds",
                                           "Time to apply one inbox event's records", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
