"""How the suite is spread over pytest-xdist's workers (`-n 4 --dist loadfile` in pyproject.toml's addopts).

`--dist loadfile` alone runs each module on one worker. Here it is refined: a module whose tests share a
fixture (a module- or class-scoped one, such as the e2e `stack`, one bot process for the module) still
runs whole, in order, on one worker, set up once as in a serial run; every other test goes on its own to
whichever worker is free, so a long module of independent tests (the CLI's, the simulator's) is spread.
The biggest units start first (xdist's `--loadscope-reorder`, on by default), and among units of one
size the end-to-end tests (each starts bot processes), then the component tests, then the unit tests:
the long ones do not come last and keep one worker busy alone at the end.

The controller sees only node ids, so it decides from the module's text: a module that shares a fixture
says `scope="module"` (or `"class"`, `"package"`) there, as a fixture's `scope=` or, for the async
fixtures, in `pytestmark = pytest.mark.asyncio(loop_scope="module")`. Each worker checks that rule
against the fixtures the tests really use: a test of a module that breaks it fails, naming the module.

Nothing else is shared between workers: each test gets its own ports (port 0, or `free_port()`), its own
`tmp_path` and its own PostgreSQL database (tests/component/conftest.py `postgres_database()`).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Fixture scopes several tests of one module share.
SHARED_SCOPES = {"module", "class", "package"}
#: How a module says (in its own text) that its tests share a fixture.
SHARES_A_FIXTURE = re.compile(r"""\b(?:loop_)?scope\s*=\s*["'](?:module|class|package)["']""")


@functools.cache
def shares_a_fixture(path: str) -> bool:
    """Return whether the test module at `path` (relative to the repository) declares a shared fixture."""
    module = ROOT / path
    return not module.is_file() or bool(SHARES_A_FIXTURE.search(module.read_text(encoding="utf-8")))


def work_unit(nodeid: str) -> str:
    """Return the unit of work a test belongs to: its module if the module shares a fixture, else itself."""
    path = nodeid.split("::", 1)[0]
    return path if shares_a_fixture(path) else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadfile`: whole modules where tests share a fixture, single tests everywhere else."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return SharedFixtureScheduling(config, log)


#: The order of the test directories (the slowest tests first); the order within a module is kept.
DIRECTORY_ORDER = ("tests/e2e/", "tests/component/", "tests/unit/")


def _directory_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return next(
        (n for n, prefix in enumerate(DIRECTORY_ORDER) if path.startswith(prefix)), len(DIRECTORY_ORDER)
    )


#: Tests in a module that shares a fixture without saying so (see `pytest_runtest_setup`).
_UNSAID = pytest.StashKey[str]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the slowest directories first; mark the tests of a module that shares a fixture unsaid."""
    items.sort(key=_directory_rank)  # stable: modules and their tests keep their order
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        shared = [  # the definition in effect (the last one: an override wins), plugins' own left out
            (name, definitions[-1].scope)
            for name, definitions in info.name2fixturedefs.items()
            if definitions and definitions[-1].scope in SHARED_SCOPES and definitions[-1].baseid != ""
        ]
        path = item.nodeid.split("::", 1)[0]
        if shared and not shares_a_fixture(path):
            name, scope = shared[0]
            item.stash[_UNSAID] = (
                f"{path} shares the {scope}-scoped fixture {name!r} but does not say so, so pytest-xdist "
                "may spread its tests over workers: add "
                '`pytestmark = pytest.mark.asyncio(loop_scope="module")` (or give the fixture '
                '`scope="module"` in the module); see tests/conftest.py'
            )


@pytest.hookimpl(tryfirst=True)  # before the fixtures are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test whose module shares a fixture without saying so (in one process and in parallel)."""
    problem = item.stash.get(_UNSAID, None)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
