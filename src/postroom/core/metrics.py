"""Prometheus metrics of the API and the delivery worker: one registry a process, or, with
several, their samples added up (core/metrics_dir.py)."""

from prometheus_client import Counter, Gauge, Histogram

from postroom.core import metrics_dir

metrics_dir.ensure_shared_directory()

REQUESTS = Counter(
    "postroom_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "postroom_http_request_duration_seconds", "Time to answer an HTTP request", ["route"]
)
MESSAGES_CREATED = Counter("postroom_messages_created_total", "Email messages created", ["status"])
MESSAGES_SENT = Counter("postroom_messages_sent_total", "Messages delivered", ["transport"])
MESSAGES_FAILED = Counter("postroom_messages_failed_total", "Messages given up on", ["transport"])
ATTEMPTS = Counter(
    "postroom_delivery_attempts_total", "Delivery attempts by outcome", ["transport", "outcome"]
)
DELIVERY_SECONDS = Histogram(
    "postroom_delivery_latency_seconds",
    "From entering outbox to accepted by the mail service",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
)
# Read from the database by whichever process answers /metrics: with several processes
# (core/metrics_dir.py), the value of the latest reading of any that is still running.
OUTBOX_DEPTH = Gauge(
    "postroom_outbox_depth",
    "Messages in outbox (queued or being sent)",
    multiprocess_mode="livemostrecent",
)
OUTBOX_OLDEST_DUE_SECONDS = Gauge(
    "postroom_outbox_oldest_due_seconds",
    "How long the most overdue outbox message has waited",
    multiprocess_mode="livemostrecent",
)
WORKERS_LIVE = Gauge(
    "postroom_workers_live",
    "Delivery workers whose heartbeat is within POSTROOM_DELIVERY__WORKER_STALE_SECONDS",
    multiprocess_mode="livemostrecent",
)
WEBHOOK_ATTEMPTS = Counter(
    "postroom_webhook_attempts_total",
    "Webhook delivery attempts by outcome (succeeded, gone, retry)",
    ["outcome"],
)
