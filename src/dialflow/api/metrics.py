"""Prometheus metrics: calls by status, active calls, webhook attempts, API latency."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter(
            "dialflow_calls",
            "Calls that reached a terminal status",
            ["status"],
            registry=self.registry,
        )
        self.active = Gauge("dialflow_active_calls", "Calls in progress", registry=self.registry)
        self.webhook_attempts = Counter(
            "dialflow_webhook_attempts",
            "Webhook delivery attempts by result",
            ["result"],
            registry=self.registry,
        )
        self.api_latency = Histogram(
            "dialflow_api_request_duration_seconds",
            "HTTP API latency by route",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.sip_malformed = Gauge(
            "dialflow_sip_malformed_messages",
            "Malformed SIP messages received",
            registry=self.registry,
        )

    # MetricsSink for the call service
    def call_ended(self, status: str) -> None:
        self.calls.labels(status=status).inc()

    def active_calls(self, count: int) -> None:
        self.active.set(count)

    def webhook_attempt(self, result: str) -> None:
        self.webhook_attempts.labels(result=result).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
