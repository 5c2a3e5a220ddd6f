"""Fuzz the simulator with schemathesis, driven by Cloudflare's own OpenAPI document.

    .venv/bin/python bench/fuzz_simulator.py [--examples 25] [--seed 7] [--mailbox-size 300]

Starts the simulator in this process on 127.0.0.1 (a free port), seeds jobs in every status (their ids
are offered to the fuzzer for `job_id` half of the time, so the job endpoints are reached beyond 404),
then runs `schemathesis run` (all phases: examples, coverage, fuzzing) over the operations the
simulator serves with the checks not_a_server_error, status_code_conformance,
response_schema_conformance and negative_data_rejection. Prints the test cases generated, the API
requests the simulator answered (by status) and every failure schemathesis reported. Asserts nothing:
`tests/component/test_simulator_fuzz.py` runs the same thing small and requires zero failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.simulator.app import RunningSimulator, SimulatorConfig, running_simulator  # noqa: E402

SPEC = ROOT / "spec" / "email-security-investigate.openapi.json"
# The operations of the document that the simulator serves (the others answer 404 7003 by design).
SERVED = (
    "email_security_investigate",
    "email_security_get_bulk_jobs",
    "email_security_create_bulk_job",
    "email_security_get_bulk_job",
    "email_security_delete_bulk_job",
    "email_security_cancel_bulk_job",
    "email_security_get_bulk_job_messages",
)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
SEEDED_STATUSES = ("PENDING", "DISCOVERING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
TOKEN = "fuzz-token"  # noqa: S105 - a throwaway token of the local simulator


@dataclass(frozen=True)
class FuzzRun:
    """What one schemathesis run did and found."""

    exit_code: int
    seconds: float
    operations_tested: int
    generated: int
    requests: int
    statuses: dict[str, int]
    failures: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    output: str


async def _seed(sim: RunningSimulator) -> list[str]:
    ids: list[str] = []
    for status in SEEDED_STATUSES:
        ids += await sim.seed_jobs(2, status, hold=True)
    return ids


def _config(job_ids: Sequence[str], account_id: str) -> str:
    """Return a schemathesis.toml offering real job ids and the seeded account half of the time."""
    values = ", ".join(json.dumps(i) for i in job_ids)
    return (
        f"[dictionaries.jobs]\nvalues = [{values}]\n\n"
        f"[dictionaries.accounts]\nvalues = [{json.dumps(account_id)}]\n\n"
        "[parameters]\n"
        '"path.job_id" = { dictionary = "jobs", probability = 0.5 }\n'
        '"path.account_id" = { dictionary = "accounts", probability = 0.5 }\n'
    )


async def fuzz(sim: RunningSimulator, *, examples: int, seed: int, workdir: Path) -> FuzzRun:
    """Run schemathesis against a running simulator; return its report and the simulator's counts."""
    job_ids = await _seed(sim)
    config = workdir / "schemathesis.toml"
    config.write_text(_config(job_ids, sim.account_id), encoding="utf-8")
    report = workdir / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(SPEC),
        "--url", sim.base_url,
        "--header", f"Authorization: Bearer {sim.simulator.config.token}",
        *(arg for op in SERVED for arg in ("--include-operation-id", op)),
        "--checks", ",".join(CHECKS),
        "--max-examples", str(examples), "--seed", str(seed),
        "--workers", "1", "--continue-on-failure", "--generation-database", "none",
        "--request-timeout", "30", "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    await sim.reset_stats()
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    seconds = time.monotonic() - started
    stats = await sim.stats()
    document: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    return FuzzRun(
        exit_code=process.returncode if process.returncode is not None else -1,
        seconds=seconds,
        operations_tested=(document.get("operations") or {}).get("tested", 0),
        generated=document.get("test_cases", {}).get("generated", 0),
        requests=stats["total"],
        statuses=stats["statuses"],
        failures=document.get("failures", []),
        errors=document.get("errors", []),
        output=output.decode(errors="replace"),
    )


def simulator_config(mailbox_size: int) -> SimulatorConfig:
    """Return the simulator configuration of a fuzz run (slow jobs, so held statuses stay put)."""
    return SimulatorConfig(token=TOKEN, job_seconds=3600, mailbox_size=mailbox_size)


async def _main(examples: int, seed: int, mailbox_size: int) -> None:
    # aiohttp logs each malformed HTTP message it refuses with 400 (the fuzzer sends a few on purpose).
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="sweep-fuzz-") as workdir:
        async with running_simulator(simulator_config(mailbox_size)) as sim:
            run = await fuzz(sim, examples=examples, seed=seed, workdir=Path(workdir))
    print(f"schemathesis over {len(SERVED)} operations, {examples} examples each, seed {seed}")
    print(f"  operations tested:    {run.operations_tested}")
    print(f"  test cases generated: {run.generated}")
    print(
        f"  requests answered:    {run.requests} ({', '.join(f'{k}: {v}' for k, v in run.statuses.items())})"
    )
    print(f"  wall time:            {run.seconds:.1f} s (exit code {run.exit_code})")
    print(f"  failures:             {sum(f['count'] for f in run.failures)}")
    for failure in run.failures:
        where = ", ".join(failure["operations"])
        print(f"    {failure['code']} {failure['title']} x{failure['count']}: {where}")
    for error in run.errors:
        print(f"  error: {error['title']} x{error['count']}")
    if run.failures or run.errors or run.exit_code:
        print(run.output)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run one fuzz."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=25, help="examples per operation (default 25)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--mailbox-size", type=int, default=300, help="messages per account (default 300)")
    args = parser.parse_args(argv)
    asyncio.run(_main(args.examples, args.seed, args.mailbox_size))


if __name__ == "__main__":
    main()
