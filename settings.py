"""Settings from the environment, validated at start with one clear message per problem."""

import os
import re
from dataclasses import dataclass

from accessbot.services.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///accessbot.db"


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str
    slack_signing_secret: str
    slack_app_token: str | None
    slack_api_url: str | None
    database_url: str
    config_path: str
    port: int
    aws_concurrency: int = 48
    drain_seconds: int = 8  # SIGTERM: the worker finishes what it started, this long at most

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


def database_url(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if url.startswith("postgres://"):  # the Heroku-style spelling
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if not re.match(r"^(sqlite|postgresql\+psycopg)://", url):
        raise ConfigError("DATABASE_URL: expected sqlite:///path.db or postgresql://...")
    return url


def config_path(env: dict[str, str] | None = None) -> str:
    """The config file: $ACCESSBOT_CONFIG, else ./accessbot.yaml."""
    env = os.environ if env is None else env
    return env.get("ACCESSBOT_CONFIG") or "accessbot.yaml"


def load_settings(env: dict[str, str] | None = None, need_slack: bool = True) -> Settings:
    env = os.environ if env is None else env

    def required(name: str, prefix: str | None = None) -> str:
        value = (env.get(name) or "").strip()
        if not value and need_slack:
            raise ConfigError(f"{name} is not set")
        if value and prefix and not value.startswith(prefix):
            raise ConfigError(f"{name}: expected a token starting with '{prefix}'")
        return value

    app_token = (env.get("SLACK_APP_TOKEN") or "").strip() or None
    if app_token and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN: expected an app-level token starting with 'xapp-'")
    api_url = (env.get("SLACK_API_URL") or "").strip() or None
    if api_url:
        if not re.match(r"^https?://", api_url):
            raise ConfigError("SLACK_API_URL: expected an http(s):// URL")
        api_url = api_url if api_url.endswith("/") else api_url + "/"
    port_text = env.get("PORT") or "3000"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"PORT: '{port_text}' is not a TCP port number")
    concurrency = env.get("AWS_CONCURRENCY") or "48"
    if not concurrency.isdigit() or not 1 <= int(concurrency) <= 256:
        raise ConfigError(f"AWS_CONCURRENCY: '{concurrency}' is not a number from 1 to 256")
    drain = env.get("DRAIN_SECONDS") or "8"
    if not drain.isdigit() or not 1 <= int(drain) <= 300:
        raise ConfigError(f"DRAIN_SECONDS: '{drain}' is not a number of seconds from 1 to 300")
    return Settings(
        slack_bot_token=required("SLACK_BOT_TOKEN", "xoxb-"),
        slack_signing_secret=required("SLACK_SIGNING_SECRET"),
        slack_app_token=app_token,
        slack_api_url=api_url,
        database_url=database_url(env),
        config_path=config_path(env),
        port=int(port_text),
        aws_concurrency=int(concurrency),
        drain_seconds=int(drain),
    )
