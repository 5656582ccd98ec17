"""Composition-root details that are not worth a process of their own."""

import logging
import threading
import time

import pytest

from accessbot.bot import database_check
from accessbot.jobs.process import _sleep_unless
from accessbot.models.migrate import downgrade, upgrade
from accessbot.services.ports import ReportNotReady
from tests.fakes.harness import free_port, run_bot_command


def test_waiting_for_the_credential_report_ends_when_the_bot_stops():
    stopping = threading.Event()
    sleep = _sleep_unless(stopping)
    sleep(0.01)  # an ordinary wait while running
    threading.Timer(0.05, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(ReportNotReady):
        sleep(30)
    assert time.monotonic() - started < 5


def test_a_database_that_does_not_answer_stops_the_start_in_one_line():
    port = free_port()  # nothing listens there
    url = f"postgresql://accessbot:s3cret-pw@127.0.0.1:{port}/accessbot"
    result = run_bot_command({"DATABASE_URL": url}, "migrate", timeout=30)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"accessbot: configuration error: DATABASE_URL (127.0.0.1:{port}/"
                           "accessbot): connection failed:")
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_json_logs_are_one_object_per_line_with_ids():
    import json as json_module

    from accessbot.handlers.logs import JsonLines

    record = logging.LogRecord("accessbot", logging.WARNING, __file__, 1,
                               "grant #%s: revoke failed", (7,), None)
    record.grant_id = 7
    line = JsonLines().format(record)
    assert "\n" not in line
    parsed = json_module.loads(line)
    assert (parsed["level"], parsed["message"], parsed["grant_id"]) == (
        "WARNING", "grant #7: revoke failed", 7)


# -- the command line ------------------------------------------------------------------

def test_version_is_the_one_in_bot_py_and_the_package():
    import tomllib
    from pathlib import Path

    from accessbot import bot

    result = run_bot_command({}, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"accessbot {bot.__version__}"
    project = tomllib.loads((Path(bot.__file__).parent / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == \
        {"attr": "accessbot.bot.__version__"}
    assert project["project"]["scripts"] == {"accessbot": "accessbot.bot:main"}


def test_check_config_validates_a_file_without_any_setting(tmp_path):
    """For a config repository's CI: no Slack token, AWS credentials or database needed."""
    path = tmp_path / "accessbot.yaml"
    path.write_text("resources:\n  devs:\n    kind: iam_group\n    group: devs\n"
                    "    approvers: [U0BOB]\n")
    bare = {k: "" for k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL",
                            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = run_bot_command(bare, "check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: valid: 1 resources (devs)" in result.stdout
    assert "warning" in result.stderr and "admin_channel is not set" in result.stderr

    path.write_text("resources:\n  devs:\n    kind: iam_group\n    group: devs\n"
                    "    approvers: [U0BOB]\n    max_duration: 1h\n    expiry_warning: 2h\n")
    result = run_bot_command(bare, "check-config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"accessbot: configuration error: {path}: resources.devs.expiry_warning: 2h is not "
        "shorter than max_duration (1h): every grant would be warned as it starts"]

    path.write_text("resources:\n  devs: [\n")
    result = run_bot_command(bare, "check-config", str(path))
    assert result.returncode == 2 and f"{path}, line 3, column 1: not valid YAML" in result.stderr


def test_the_drain_defaults_inside_docker_stops_grace_and_can_be_set():
    from accessbot.settings import load_settings

    slack = {"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s"}
    assert load_settings(slack).drain_seconds == 8
    assert load_settings({**slack, "DRAIN_SECONDS": "25"}).drain_seconds == 25


# -- doctor's database line -------------------------------------------------------------

def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from accessbot.models.migrate import ROOT

    return ScriptDirectory(str(ROOT / "migrations")).get_current_head()


def test_doctor_database_line_reachable_migrated_or_not(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert database_check(url).line() == (f"✗ database {tmp_path / 'a.db'}: no such file: run "
                                          "accessbot migrate (serving does it too)")
    upgrade(url)
    check = database_check(url)
    assert check.ok and check.what.startswith(f"database {tmp_path / 'a.db'}: reachable, at "
                                              f"the latest migration ({head_revision()}")
    downgrade(url, "0002")
    assert database_check(url).line().startswith(f"✗ database {tmp_path / 'a.db'}: at 0002")


def test_doctor_database_line_names_the_host_never_the_password():
    port = free_port()
    check = database_check(f"postgresql+psycopg://bot:s3cret@127.0.0.1:{port}/accessbot")
    assert not check.ok and check.what.startswith(f"database 127.0.0.1:{port}/accessbot: ")
    assert "s3cret" not in check.line()


# -- what each process imports (memory: docs/BENCHMARKS.md, phase 5) ---------------------

@pytest.mark.parametrize("module, not_loaded", [
    ("accessbot.handlers.web", {"boto3", "botocore", "apscheduler", "alembic",
                                "accessbot.handlers.work", "accessbot.services.runner"}),
    ("accessbot.jobs.process", {"slack_bolt", "uvicorn", "alembic"}),
    ("accessbot.bot", {"sqlalchemy", "boto3", "slack_sdk", "alembic", "apscheduler"}),
])
def test_each_process_imports_only_what_it_needs(module, not_loaded):
    """The web process answers Slack; the worker does the work; bot.py, which every process
    multiprocessing starts imports again, stays light. The start-up AWS check and the
    migration run in a process of their own (bot._preflight). The web process shares
    only the tasks' names and encoding (handlers/tasks.py) with the worker's code."""
    import subprocess
    import sys

    code = (f"import sys, {module}; "
            "print(' '.join({n for m in sys.modules for n in (m, m.split('.')[0])}))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert loaded & not_loaded == set()
