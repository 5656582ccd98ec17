"""services/ holds the use cases: it never talks to Slack, AWS or the scheduler itself."""

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from accessbot import services

FORBIDDEN = {"slack_sdk", "slack_bolt", "boto3", "botocore", "apscheduler"}
MODULES = sorted(f"accessbot.services.{m.name}" for m in pkgutil.iter_modules(services.__path__))


def imported_packages(source: str) -> set[str]:
    """Top-level package of every import statement in the source, nested ones included."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_every_service_module_is_checked():
    assert {"accessbot.services.grants", "accessbot.services.requests", "accessbot.services.runner",
            "accessbot.services.ports"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_service_module_imports_no_edge_library(name):
    module = importlib.import_module(name)
    source = Path(inspect.getfile(module)).read_text()
    assert imported_packages(source) & FORBIDDEN == set()


@pytest.mark.parametrize("source, found", [
    ("import boto3", {"boto3"}),
    ("from slack_sdk.models.blocks import SectionBlock", {"slack_sdk"}),
    ("def f():\n    import apscheduler.schedulers\n", {"apscheduler"}),
    ("from . import grants\nfrom services import audit", {"services"}),
])
def test_the_import_scanner_finds_imports(source, found):
    assert imported_packages(source) == found


def test_importing_services_loads_no_edge_library():
    """Transitively too: services/ and what it imports (models/) leave them unloaded."""
    code = ("import sys\n"
            + "".join(f"import {name}\n" for name in MODULES)
            + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(services.__file__).parent.parent, check=True)
    assert result.stdout.strip() == "[]"
