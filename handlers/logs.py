"""Logging set-up: text for people (the default), or LOG_FORMAT=json for a log pipeline."""

import json
import logging
import os
from datetime import UTC, datetime

TEXT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
# ids a log call may pass in `extra=`; they become fields of the JSON line
IDS = ("request_id", "grant_id", "finding_id", "task_id", "message_id")


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, process, logger, message, ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname, "process": record.processName,
                "logger": record.name, "message": record.getMessage()}
        line.update({key: getattr(record, key) for key in IDS if hasattr(record, key)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(env: dict[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    handler = logging.StreamHandler()
    json_lines = (env.get("LOG_FORMAT") or "text").lower() == "json"
    handler.setFormatter(JsonLines() if json_lines else logging.Formatter(TEXT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # "Found credentials in environment variables": on every start, in both processes
    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
    logging.getLogger("botocore.configprovider").setLevel(logging.WARNING)  # "Found endpoint"
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # "setup plugin"
    # uvicorn's "Started server process", "Uvicorn running on ...": the bot says it listens
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    # slack_sdk logs every request that got no answer at ERROR, with a traceback's worth of
    # text; our callers say what failed, with its context (the outbox row, the start-up)
    logging.getLogger("slack_sdk.web.base_client").setLevel(logging.CRITICAL)
