"""What a deployer installs: the lock file, the image, the licence."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_lock_pins_every_dependency_within_its_range():
    pins = locked()
    wanted = PROJECT["dependencies"] + [d for extra in PROJECT["optional-dependencies"].values()
                                        for d in extra]
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        assert name in pins, f"{spec.name} is not in requirements.lock (make lock)"
        assert spec.specifier.contains(pins[name], prereleases=True), (spec, pins[name])


def test_the_image_installs_the_lock_before_the_code_and_ships_no_tests():
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line and not line.startswith("#")]
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY")]
    assert copies[0] == ["pyproject.toml", "requirements.lock"]
    shipped = {path for copy in copies for path in copy}
    assert not shipped & {".", "tests", "scripts"}, shipped
    assert {"bot.py", "handlers", "models", "migrations", "services", "aws", "jobs"} <= shipped
    dependencies = lines.index(next(line for line in lines if "requirements.lock'" in line))
    code = lines.index(next(line for line in lines if line.startswith("COPY bot.py")))
    assert dependencies < code  # a code change does not reinstall the dependencies
    assert lines[-1] == 'CMD ["accessbot", "serve"]'


def test_the_licence_is_apache_2():
    assert "Apache License\n                           Version 2.0" in \
        (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert re.search(r"^## 0\.\d+\.\d+", (ROOT / "CHANGELOG.md").read_text(), re.M)


def _environment_table() -> set[str]:
    """The variables the README's Environment table documents (what settings.py reads)."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Environment", 1)[1].split("\n\n", 2)[1]
    return set(re.findall(r"^\| `([A-Z_]+)`", table, re.M))


def test_the_kubernetes_example_matches_the_code():
    import yaml

    from accessbot.handlers.web import WebApp
    from accessbot.settings import load_settings
    from tests.handlers.slack_requests import asgi_get

    documents = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/deployment.yaml").read_text()))
    deployment, = [d for d in documents if d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    container, = spec["containers"]
    assert deployment["spec"]["replicas"] == 2 and spec["terminationGracePeriodSeconds"] >= 10
    assert container["args"] == ["accessbot", "serve"]
    port = container["ports"][0]["containerPort"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["PORT"]) == port == load_settings({"SLACK_BOT_TOKEN": "xoxb-x",
                                                      "SLACK_SIGNING_SECRET": "s"}).port
    assert set(env) <= _environment_table() | {"AWS_REGION"}
    probes = (container["readinessProbe"]["httpGet"]["path"],
              container["livenessProbe"]["httpGet"]["path"])
    assert probes == ("/readyz", "/healthz")
    web = WebApp(None, None, lambda: {"ok": True})
    # both are routes of the web process
    assert [asgi_get(web, path)[0] for path in probes] == [200, 200]


def test_docker_compose_runs_the_image_with_postgres():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    bot = compose["accessbot"]
    assert bot["build"] == "." and bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert set(bot["environment"]) <= _environment_table() | {"AWS_REGION", "AWS_PROFILE"}
    assert bot["ports"] == [f"{bot['environment']['PORT']}:3000"]


def test_the_wheel_installs_one_package_and_its_command_runs_outside_the_repository(tmp_path):
    """`pip install .` adds `accessbot` and nothing generic (`models`, `services`, ...)."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    wheel, = (tmp_path / "dist").glob("accessbot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"accessbot", wheel.name.split("-py")[0]
                                                      + ".dist-info"}
    assert {"accessbot/bot.py", "accessbot/alembic.ini", "accessbot/migrations/script.py.mako",
            "accessbot/migrations/versions/0001_initial_schema.py"} <= set(names)
    assert not [name for name in names if name.startswith(("accessbot/tests", "accessbot/scripts"))]

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    (tmp_path / "accessbot.yaml").write_text(
        "resources:\n  ops:\n    kind: iam_group\n    group: ops\n    approvers: [U0BOB]\n")
    code = ("import sys, accessbot.bot as bot; print(bot.__file__, flush=True); "
            "sys.exit(bot.main(sys.argv[1:]))")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    version = subprocess.run([sys.executable, "-c", code, "--version"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert version.returncode == 0, version.stderr
    where, said = version.stdout.splitlines()
    assert where.startswith(str(site)) and said.startswith("accessbot 0.")
    check = subprocess.run([sys.executable, "-c", code, "check-config"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert check.returncode == 0 and "valid: 1 resources (ops)" in check.stdout, check.stderr
    migrate = subprocess.run([sys.executable, "-c", code, "migrate"], cwd=tmp_path,
                             env={**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"},
                             capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr  # alembic.ini and the migrations shipped
