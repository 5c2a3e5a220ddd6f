"""A bounded, seeded schemathesis run against the simulator, from Cloudflare's own OpenAPI document.

The same run as `bench/fuzz_simulator.py`, small enough for CI: every operation the simulator serves,
all phases (examples, coverage, fuzzing), checks not_a_server_error, status_code_conformance,
response_schema_conformance and negative_data_rejection. Any failure fails the test with
schemathesis's own report (with a curl line to reproduce it).
"""

from __future__ import annotations

from pathlib import Path

from bench.fuzz_simulator import SERVED, fuzz, simulator_config
from bot.simulator.app import running_simulator

EXAMPLES = 10
SEED = 7


async def test_schemathesis_finds_no_failure_on_the_operations_the_simulator_serves(tmp_path: Path) -> None:
    async with running_simulator(simulator_config(mailbox_size=300), host="127.0.0.1", port=0) as sim:
        run = await fuzz(sim, examples=EXAMPLES, seed=SEED, workdir=tmp_path)
    report = f"\n{run.output}"
    assert run.exit_code == 0, report
    assert run.failures == [] and run.errors == [], report
    assert run.operations_tested == len(SERVED) == 7, report
    # The run did reach the API, with valid and invalid requests alike, and never made it fail.
    assert run.generated >= 300 and run.requests >= run.generated, report
    assert not [status for status in run.statuses if status.startswith("5")], run.statuses
    assert {"200", "201", "400", "404"} <= set(run.statuses), run.statuses
