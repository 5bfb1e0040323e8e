"""Prometheus instruments that the job workers, the pipeline and the delivery dispatcher update as they work.

They live in the client's default registry, beside its process metrics. What
the server already keeps a state of (the jobs table, camera health) is read
when ``GET /metrics`` is scraped instead (``api.metrics``), so nothing has
to be kept in step. Each process counts only what it ran itself.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds, from a quick analyzer on one frame to a long video's job or a backlog's wait.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

JOB_WAIT_SECONDS = Histogram(
    "watchkeeper_job_wait_seconds",
    "Time a job waited for a worker: from when it could run (queued, or its retry due) to its claim.",
    ["kind"], buckets=DURATION_BUCKETS)
JOB_RUN_SECONDS = Histogram(
    "watchkeeper_job_run_seconds", "Time a job's handler ran, per attempt, whatever its outcome.",
    ["kind"], buckets=DURATION_BUCKETS)
ANALYZER_SECONDS = Histogram(
    "watchkeeper_analyzer_seconds",
    "Time one analyzer (its models' inference included) took on one input, video chunk or live window.",
    ["analyzer", "media_type"], buckets=DURATION_BUCKETS)
ALERTS_SENT = Counter(
    "watchkeeper_alerts_sent", "Outbox deliveries sent (alerts, and job webhooks on channel 'webhook').",
    ["channel"])
ALERTS_FAILED = Counter(
    "watchkeeper_alerts_failed", "Outbox send attempts that failed; each retry that fails counts again.",
    ["channel"])
