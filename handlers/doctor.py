"""`accessbot doctor`, Slack's part: the token and its scopes, the channels, the people."""

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from accessbot.services.catalog import Catalog, is_channel, is_usergroup
from accessbot.services.doctor import Check

# The bot token scopes of slack-manifest.yml (tests/handlers/test_doctor.py holds them equal)
BOT_SCOPES = ("commands", "chat:write", "users:read", "users:read.email", "channels:read",
              "groups:read", "files:write", "usergroups:read")
REINSTALL = ("add them under OAuth & Permissions (or update the app from slack-manifest.yml) "
             "and reinstall the app to the workspace")
MEMBER_ID = "correct the config (a member id: the person's Slack profile, ⋮, Copy member ID)"


def slack_checks(client: WebClient, catalog: Catalog) -> list[Check]:
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        return [Check(False, f"Slack token: refused ({_error(exc)})",
                      "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-...)")]
    except (SlackClientError, OSError, ValueError) as exc:
        return [Check(False, f"Slack: no answer at {client.base_url} ({exc})",
                      "check this host's network access to Slack (or SLACK_API_URL)")]
    checks = [Check(True, f"Slack token: @{auth.get('user')} in {auth.get('team')}")]
    headers = {name.lower(): value for name, value in (auth.headers or {}).items()}
    scopes = headers.get("x-oauth-scopes")
    granted = {s.strip() for s in (scopes[0] if isinstance(scopes, list) else scopes or "")
               .split(",")}
    missing = [scope for scope in BOT_SCOPES if scope not in granted]
    checks.append(Check(not missing, "Slack scopes: " + (
        f"the manifest's {len(BOT_SCOPES)}" if not missing else f"missing {', '.join(missing)}"),
        REINSTALL))
    for label, where in (("approval channel", catalog.approval_channel),
                         ("admin channel", catalog.admin_channel)):
        if where is not None:
            checks.append(_channel(client, label, where) if is_channel(where)
                          else _people(client, {where: [label]}, label))
    named: dict[str, list[str]] = {}
    groups: dict[str, list[str]] = {}
    for resource in catalog.resources.values():
        for person in (*resource.approvers, *resource.requesters):
            (groups if is_usergroup(person) else named).setdefault(person, []).append(
                resource.name)
    for admin in filter(is_usergroup, catalog.admins):
        groups.setdefault(admin, []).append("admins")
    if named:
        checks.append(_people(client, named, "approvers and requesters"))
    if groups:
        checks.append(_usergroups(client, groups))
    return checks


def _usergroups(client: WebClient, groups: dict[str, list[str]]) -> Check:
    """Each user group among approvers and admins exists and has members."""
    wrong = []
    for group, where in sorted(groups.items()):
        try:
            users = client.usergroups_users_list(usergroup=group).get("users") or []
        except SlackApiError as exc:
            wrong.append(f"{group} ({', '.join(where)}): Slack said {_error(exc)}")
            continue
        except (SlackClientError, OSError, ValueError) as exc:
            wrong.append(f"{group}: no answer from Slack ({exc})")
            continue
        if not users:
            wrong.append(f"{group} ({', '.join(where)}) has no members")
    if wrong:
        return Check(False, f"user groups: {'; '.join(wrong)}",
                     "correct the config (a user group's id: S..., from its page in Slack)")
    return Check(True, f"user groups: {len(groups)}, each with members")


def _channel(client: WebClient, label: str, channel: str) -> Check:
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as exc:
        error = _error(exc)
        if error == "channel_not_found":
            return Check(False, f"{label} {channel}: no such channel, or a private one the bot "
                         "is not in", "correct the id (the channel's details, at the bottom), "
                         "or invite the bot: /invite @accessbot")
        return Check(False, f"{label} {channel}: Slack said {error}",
                     REINSTALL if error == "missing_scope" else "")
    except (SlackClientError, OSError, ValueError) as exc:
        return Check(False, f"{label} {channel}: no answer from Slack ({exc})")
    name = f"{channel} (#{info.get('name')})" if info.get("name") else channel
    if info.get("is_archived"):
        return Check(False, f"{label} {name}: archived", "unarchive it or name another")
    if not info.get("is_member"):
        return Check(False, f"{label} {name}: the bot is not in it",
                     "invite it: /invite @accessbot in that channel")
    return Check(True, f"{label} {name}: the bot is in it")


def _people(client: WebClient, named: dict[str, list[str]], label: str) -> Check:
    wrong = []
    for person, where in sorted(named.items()):
        try:
            user = client.users_info(user=person)["user"]
        except SlackApiError as exc:
            error = _error(exc)
            wrong.append(f"{person} ({', '.join(where)}) is not a Slack user" if error ==
                         "user_not_found" else f"{person}: Slack said {error}")
            continue
        except (SlackClientError, OSError, ValueError) as exc:
            wrong.append(f"{person}: no answer from Slack ({exc})")
            continue
        if user.get("deleted"):
            wrong.append(f"{person} ({', '.join(where)}) is deactivated")
        elif user.get("is_bot"):
            wrong.append(f"{person} ({', '.join(where)}) is a bot")
    if wrong:
        return Check(False, f"{label}: {'; '.join(wrong)}", MEMBER_ID)
    return Check(True, f"{label}: {len(named)} Slack {'user' if len(named) == 1 else 'users'}")


def _error(exc: SlackApiError) -> str:
    data = exc.response.data if exc.response is not None else None
    return (data.get("error") if isinstance(data, dict) else None) or \
        str(exc.response.status_code if exc.response is not None else exc)
