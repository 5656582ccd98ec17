"""Prometheus metrics, served at GET /metrics by the web process (bot.WebApp).

The bot is two processes, so prometheus_client runs in its multiprocess mode: bot.py
points PROMETHEUS_MULTIPROC_DIR at a directory before anything imports this module, and
each process writes its samples there. Queue depths are read from the database when
scraped (handlers/health.py), so every replica reports the same truth.
"""

from prometheus_client import Counter, Histogram

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
LAG = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

ACKS = Counter("accessbot_acks_total", "Slack requests acknowledged, by listener",
               ["listener"])
ACK_SECONDS = Histogram("accessbot_ack_seconds",
                        "Time from dispatch to acknowledgement (its task committed)",
                        ["listener"], buckets=LATENCY)
MESSAGES = Counter("accessbot_messages_total", "Outbox deliveries: sent, retried, failed",
                   ["outcome", "kind", "error"])
GRANTS = Counter("accessbot_grants_total", "Grants put in place, by outcome", ["outcome"])
REVOCATIONS = Counter("accessbot_revocations_total", "Revocations, by outcome", ["outcome"])
REVOCATION_LAG = Histogram("accessbot_revocation_lag_seconds",
                           "revoked_at minus expires_at of each revoked grant", buckets=LAG)
AWS_CALLS = Counter("accessbot_aws_calls_total",
                    "AWS API calls, by service, operation and error code",
                    ["service", "operation", "error"])
JOB_RUNS = Counter("accessbot_job_runs_total", "Scheduled job runs, by outcome",
                   ["job", "outcome"])
JOB_SECONDS = Histogram("accessbot_job_seconds", "Scheduled job durations", ["job"],
                        buckets=(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300))
TASKS = Counter("accessbot_tasks_total", "Acknowledged tasks run, by outcome",
                ["task", "outcome"])
TASK_SECONDS = Histogram("accessbot_task_seconds",
                         "From a task's acknowledgement (its inbox row) to its end, by task; "
                         "for approve, from the click to the decision's commit",
                         ["task"], buckets=(*LATENCY, 10, 30, 60))
