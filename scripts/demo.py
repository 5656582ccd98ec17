"""`make demo`: the whole loop, for real, on your machine, in under a minute; then a
stale access key found, its owner told, and the key deactivated from Slack.

It starts the real bot (`python bot.py`) on SQLite, against moto (an AWS emulator,
in this process) and a local stand-in for Slack's Web API, then plays a requester
and an approver by sending the same signed HTTP requests Slack would send.
"""

import logging
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: tests.fakes

from accessbot.handlers.ids import ActionId  # noqa: E402
from tests.fakes.cloudtrail import FakeCloudTrail  # noqa: E402
from tests.fakes.harness import (  # noqa: E402
    BOT_TOKEN,
    SIGNING_SECRET,
    BotProcess,
    MotoServer,
    SlackSender,
    run_bot_command,
)
from tests.fakes.slack_api import FakeSlack, dm_channel, render_text  # noqa: E402

GRANT = "20s"
CONFIG = {
    "approval_channel": "C0APPROVALS",
    "admin_channel": "C0SECURITY",
    "resources": {
        "prod-admins": {
            "description": "Administrator access to production",
            "kind": "iam_group", "group": "prod-admins", "approvers": ["U0BOB", "U0DAVE"],
            "default_duration": "1h", "min_duration": "10s", "max_duration": "4h",
            "expiry_warning": "10s",
        },
    },
    # so that a key made at the start of the demo is stale by its end (defaults: 90d, 45d)
    "hygiene": {"access_key_max_age": "5s", "unused_credential_age": "5s"},
    # what a grant was used for is read from CloudTrail this long after it ends (default 15m)
    "cloudtrail": {"delay": "2s"},
}
NAMES = {"U0ALICE": "alice", "U0BOB": "bob", "U0DAVE": "dave", "D0ALICE": "DM alice",
         "D0BOB": "DM bob", "D0DAVE": "DM dave", "C0APPROVALS": "#approvals"}


class Transcript:
    def __init__(self, slack: FakeSlack):
        self.slack = slack
        self.seen = 0
        self.started = time.monotonic()

    def say(self, who: str, text: str) -> None:
        print(f"\n[{self._clock()}] {who} {text}")

    def show(self, title: str, text: str) -> None:
        print(f"[{self._clock()}] {title}")
        print(textwrap.indent(text.replace("*", "").strip(), "    | "))

    def new_messages(self) -> None:
        """Print what the bot posted or edited in Slack since the last call."""
        calls = self.slack.calls()
        last = None
        for call in calls[self.seen:]:
            where = NAMES.get(call.args.get("channel"), call.args.get("channel"))
            text = render_text(call.args)
            if call.method == "chat.postMessage" and not call.args.get("thread_ts"):
                title = f"accessbot -> {where}"
            elif call.method == "chat.update":
                title = f"accessbot edits its message in {where}"
            elif call.method == "response_url":
                title = "accessbot (only you can see this)"
            else:
                continue
            if text == last:  # the same message to another approver: say so, briefly
                print(f"[{self._clock()}] {title} (the same message)")
            else:
                self.show(title, text)
            last = text
        self.seen = len(calls)

    def _clock(self) -> str:
        return f"{time.monotonic() - self.started:5.1f}s"


def iam_state(iam) -> str:
    members = [u["UserName"] for u in iam.get_group(GroupName="prod-admins")["Users"]]
    return f"IAM group prod-admins members: {members or 'none'}"


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="accessbot-demo-"))
    (workdir / "accessbot.yaml").write_text(yaml.safe_dump(CONFIG))
    moto = MotoServer().start()
    # moto answers the calls it lacks (IAM's last-accessed data, read by the access review)
    # with a 500 and logs the traceback; the bot copes, the transcript need not show it
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    iam = moto.iam()
    iam.create_user(UserName="alice", Tags=[{"Key": "slack-user-id", "Value": "U0ALICE"}])
    iam.create_group(GroupName="prod-admins")
    ci_key = iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    database = f"sqlite:///{workdir / 'accessbot.db'}"
    with FakeSlack(users={"U0ALICE": {"name": "Alice"}, "U0BOB": {"name": "Bob"},
                          "U0DAVE": {"name": "Dave"}}) as slack, FakeCloudTrail() as trail:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "SLACK_API_URL": slack.api_url, "DATABASE_URL": database,
               "ACCESSBOT_CONFIG": str(workdir / "accessbot.yaml"), **moto.env(),
               "AWS_ENDPOINT_URL_CLOUDTRAIL": trail.url}
        bot = BotProcess(env, workdir / "bot.log").start()
        out = Transcript(slack)
        try:
            sender = SlackSender(bot.url, slack.url)
            run_story(out, sender, slack, iam, trail)
            run_hygiene_story(out, sender, slack, iam, env, ci_key)
            print_audit(env)
        except Exception:
            print(f"\nThe demo failed. The bot's log ({bot.log_path}):\n{bot.log()[-4000:]}")
            raise
        finally:
            bot.stop()
            moto.stop()
    print(f"\nDone. The bot's log and database are in {workdir}")
    return 0


def run_story(out: Transcript, sender: SlackSender, slack: FakeSlack, iam,
              trail: FakeCloudTrail) -> None:
    print("accessbot demo: the bot runs as `python bot.py`; Slack and AWS are local fakes.")
    out.say("alice:", "/request-access help")
    out.show("accessbot (only you can see this)",
             render_text(sender.command("U0ALICE", "help").json()))

    out.say("alice:", f"/request-access prod-admins {GRANT} rotate the TLS certificate")
    reply = sender.command("U0ALICE", f"prod-admins {GRANT} rotate the TLS certificate")
    out.show(f"accessbot (only you can see this; answered in {reply.seconds * 1000:.0f} ms)",
             reply.json()["text"])
    dm = slack.wait_for(lambda: next((m["text"] for m in slack.dm("U0ALICE")
                                      if "waiting for" in m.get("text", "")), None))
    request_id = dm.split("Request #")[1].split()[0]
    out.new_messages()
    print(f"    {iam_state(iam)}")

    out.say("alice:", "clicks [Approve] on her own request")
    sender.click("U0ALICE", ActionId.APPROVE, request_id)
    slack.wait_for(lambda: slack.calls("response_url"))
    out.new_messages()

    out.say("bob:", "clicks [Approve]")
    reply = sender.click("U0BOB", ActionId.APPROVE, request_id, channel="D0BOB")
    clicked = time.monotonic()
    slack.wait_for(lambda: "alice" in iam_state(iam), timeout=10)
    print(f"    (Slack got its answer in {reply.seconds * 1000:.0f} ms; alice was in the IAM "
          f"group {time.monotonic() - clicked:.2f} s after the click)")
    slack.wait_for(lambda: any("You have" in m.get("text", "") for m in slack.dm("U0ALICE")))
    time.sleep(0.3)
    out.new_messages()
    print(f"    {iam_state(iam)}")
    print("\n... alice rotates the certificate (CloudTrail, a local stand-in too, records her "
          "calls) ...")
    used = datetime.now(UTC)
    trail.add("alice", used, "acm.amazonaws.com", "ImportCertificate", read_only=False,
              source_ip="203.0.113.9")
    trail.add("alice", used, "elasticloadbalancing.amazonaws.com", "ModifyListener",
              read_only=False, source_ip="203.0.113.9")
    trail.add("alice", used, "acm.amazonaws.com", "ListCertificates", source_ip="203.0.113.9")
    trail.add("alice", used, "iam.amazonaws.com", "CreateUser", read_only=False,
              error_code="AccessDenied", source_ip="203.0.113.9")

    print("\n... waiting for the expiry warning and the revocation ...")
    slack.wait_for(lambda: any("ends in" in m.get("text", "") for m in slack.dm("U0ALICE")),
                   timeout=30)
    out.new_messages()
    slack.wait_for(lambda: "alice" not in iam_state(iam), timeout=30)
    slack.wait_for(lambda: any("ended" in m.get("text", "") for m in slack.dm("U0ALICE")))
    time.sleep(0.3)
    out.new_messages()
    print(f"    {iam_state(iam)}")

    print(f"\n... {CONFIG['cloudtrail']['delay']} after the end, what the grant was used for "
          "(cloudtrail.delay: 15m by default) ...")
    slack.wait_for(lambda: any("CloudTrail" in render_text(m) for m in slack.dm("U0ALICE")),
                   timeout=30)
    time.sleep(0.3)
    out.new_messages()


def run_hygiene_story(out: Transcript, sender: SlackSender, slack: FakeSlack, iam, env: dict,
                      key_id: str) -> None:
    print("\n... meanwhile alice's old access key has not been used (the demo counts 5 s as "
          "stale) ...")
    out.say("cron:", "python bot.py run-job stale-credentials   (the bot also runs it daily)")
    result = run_bot_command(env, "run-job", "stale-credentials")
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    print(textwrap.indent(result.stdout.strip(), "    "))
    def findings_dm():  # sent by run-job's own sender, or by the running bot's
        return next((m for m in reversed(slack.dm("U0ALICE")) if "Deactivate now" in str(m)),
                    None)

    dm = slack.wait_for(findings_dm, timeout=30)
    time.sleep(0.3)
    out.new_messages()
    block = next(b for b in dm["blocks"] if b["type"] == "actions")
    button = next(e for e in block["elements"] if e["text"]["text"] == "Deactivate now")

    out.say("alice:", "clicks [Deactivate now]")
    sender.click("U0ALICE", ActionId.FINDING_DEACTIVATE, button["value"],
                 channel=dm_channel("U0ALICE"), message_ts=dm["ts"], block_id=block["block_id"])
    slack.wait_for(lambda: key_status(iam, key_id) == "Inactive", timeout=10)
    def updated():  # the message she clicked in, edited in place
        same = [m for m in slack.dm("U0ALICE") if m["ts"] == dm["ts"]]
        return same and "deactivated" in render_text(same[0])

    slack.wait_for(updated)
    time.sleep(0.3)
    out.new_messages()
    print(f"    IAM access key ...{key_id[-4:]} of alice: {key_status(iam, key_id)}")


def key_status(iam, key_id: str) -> str:
    keys = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    return next(k["Status"] for k in keys if k["AccessKeyId"] == key_id)


def print_audit(env: dict[str, str]) -> None:
    """What `accessbot audit` prints: the trail, a sentence a line, with people's names."""
    print("\nAudit trail (accessbot audit --since all):")
    result = run_bot_command(env, "audit", "--since", "all")
    for line in result.stdout.splitlines():
        print(f"    {line}")
    print("\nIs the trail as it was written? (accessbot audit verify: each row's hash covers "
          "the row and the one before)")
    run_bot_command(env, "run-job", "seal-audit")  # the bot chains new rows every 15 s
    result = run_bot_command(env, "audit", "verify")
    print(f"    {(result.stdout or result.stderr).strip()}")

if __name__ == "__main__":
    sys.exit(main())
