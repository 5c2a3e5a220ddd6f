"""The layers hold: who may import whom, read from the source with `ast` (README, "Architecture").

Every import counts, also one inside a function or under `TYPE_CHECKING`. A failure names the file,
the line, the import and the rule, and says what to do instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("bot", "handlers", "blocks")


@dataclass(frozen=True)
class Rule:
    """Modules under `layer` may not import anything under `forbidden`, except from `allowed`."""

    layer: str
    forbidden: tuple[str, ...]
    why: str
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()  # modules of the layer the rule does not apply to


RULES: tuple[Rule, ...] = (
    Rule(
        layer="blocks",
        forbidden=("bot.cloudflare", "bot.store", "handlers"),
        why=(
            "block builders are pure: data in, Block Kit out. Take Sweep's models from bot.models "
            "(TrackedJob, JobPage, SearchParams…), never the API's, the store's or a handler's"
        ),
    ),
    Rule(
        layer="handlers",
        forbidden=("bot.cloudflare", "bot.store"),
        why=(
            "handlers are thin: they call a use case (bot/jobs.py) and catch Sweep's own errors "
            "(bot/errors.py: JobNotFound, CloudflareFailed); the use case talks to Cloudflare and the store"
        ),
    ),
    Rule(
        layer="bot.cloudflare",
        forbidden=("bot", "handlers", "blocks"),
        allowed=("bot.cloudflare", "bot.config", "bot.backoff"),
        why=(
            "the Cloudflare client is a library of its own: it may use bot.config and the "
            "dependency-free bot.backoff, nothing else of the bot; Sweep adapts to it, not the other way"
        ),
    ),
    Rule(
        layer="bot",
        forbidden=("bot.simulator", "bot.devslack"),
        exempt=("bot.simulator", "bot.devslack", "bot.__main__", "bot.demo"),
        why=(
            "the simulator and the local Slack are test and demo tools: only the CLI's "
            "demo/simulator/devslack commands (bot/__main__.py, bot/demo.py) may start them"
        ),
    ),
    Rule(
        layer="handlers",
        forbidden=("bot.simulator", "bot.devslack"),
        why="the simulator and the local Slack are test and demo tools, never production code",
    ),
    Rule(
        layer="blocks",
        forbidden=("bot.simulator", "bot.devslack"),
        why="the simulator and the local Slack are test and demo tools, never production code",
    ),
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. handlers.cancel
    path: str
    line: int
    target: str  # what it imports, e.g. bot.cloudflare.errors


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def module_name(path: Path, root: Path) -> str:
    """Return the dotted module name of a source file under `root`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, *, is_package: bool, path: str = "<source>") -> Iterator[Import]:
    """Yield every name `source` imports (`from a import b` yields `a.b`: b may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            for alias in node.names:
                target = stem if alias.name == "*" else f"{stem}.{alias.name}"
                yield Import(module, path, node.lineno, target)


def violations(found: Iterator[Import] | list[Import], rules: tuple[Rule, ...] = RULES) -> list[str]:
    """Return one teaching line per import that breaks a rule."""
    problems: list[str] = []
    for imp in found:
        for rule in rules:
            if not _within(imp.module, rule.layer) or any(_within(imp.module, e) for e in rule.exempt):
                continue
            if any(_within(imp.target, a) for a in rule.allowed):
                continue
            for forbidden in rule.forbidden:
                if _within(imp.target, forbidden):
                    problems.append(
                        f"{imp.path}:{imp.line}: {imp.module} imports {imp.target}, but {rule.layer} may not "
                        f"import {forbidden}: {rule.why}."
                    )
                    break
    return sorted(set(problems))


def project_imports() -> list[Import]:
    found: list[Import] = []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            module = module_name(path, ROOT)
            source = path.read_text(encoding="utf-8")
            found.extend(
                imports_of(
                    source,
                    module,
                    is_package=path.name == "__init__.py",
                    path=str(path.relative_to(ROOT)),
                )
            )
    return found


def test_the_layers_hold() -> None:
    problems = violations(project_imports())
    assert not problems, "Import rules broken (see README, 'Architecture'):\n" + "\n".join(problems)


def test_the_scan_sees_every_layer() -> None:
    modules = {imp.module for imp in project_imports()}
    for expected in ("handlers.commands", "blocks.job_card", "bot.cloudflare.client", "bot.jobs", "bot.demo"):
        assert expected in modules, expected


@pytest.mark.parametrize(
    ("module", "is_package", "source", "expected"),
    [
        (
            "handlers.cancel",
            False,
            "from bot.cloudflare.errors import NotFoundError",
            "handlers may not import",
        ),
        ("handlers.cancel", False, "from bot import store", "may not import bot.store"),
        ("handlers.cancel", False, "def f():\n    import bot.store.jobs\n", "may not import bot.store"),
        ("blocks.job_list", False, "from bot.cloudflare.models import BulkJob", "pure"),
        ("blocks.job_list", False, "from handlers._common import Services", "may not import handlers"),
        ("blocks.job_list", False, "from bot.store import SqliteStore", "may not import bot.store"),
        ("bot.cloudflare.client", False, "from bot.models import TrackedJob", "library of its own"),
        ("bot.cloudflare.client", False, "from ..jobs import JobService", "library of its own"),
        ("bot.cloudflare", True, "from ..policy import Policy", "library of its own"),
        ("bot.jobs", False, "from bot.simulator.state import SimState", "test and demo tools"),
        ("bot.app", False, "from .devslack import server", "test and demo tools"),
        ("handlers.watch", False, "import bot.devslack", "test and demo tools"),
    ],
)
def test_a_forbidden_import_fails_with_the_rule(
    module: str, is_package: bool, source: str, expected: str
) -> None:
    problems = violations(list(imports_of(source, module, is_package=is_package)))
    assert problems, (module, source)
    assert expected in problems[0], problems


@pytest.mark.parametrize(
    ("module", "is_package", "source"),
    [
        ("bot.cloudflare.client", False, "from bot.config import Settings"),
        ("bot.cloudflare.client", False, "from bot.backoff import capped_exponential"),
        ("bot.cloudflare.client", False, "from .errors import CloudflareError"),
        ("bot.jobs", False, "from bot.cloudflare.client import CloudflareClient"),
        ("bot.demo", False, "from bot.simulator.app import build_app"),
        ("bot.__main__", False, "from bot.devslack import server"),
        ("bot.devslack.server", False, "from bot.devslack.state import SlackState"),
        ("handlers.cancel", False, "from bot.errors import JobNotFound"),
        ("blocks.job_card", False, "from bot.models import TrackedJob"),
    ],
)
def test_an_allowed_import_passes(module: str, is_package: bool, source: str) -> None:
    assert violations(list(imports_of(source, module, is_package=is_package))) == []
