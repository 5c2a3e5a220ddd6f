"""Print the combined coverage (the test process and every bot process it started) per package.

Run after the test command: `.venv/bin/python -m tests.coverage_by_package [DATA_FILE]`. It reads the
data file pytest-cov combined (`.coverage` by default) and groups `coverage json`'s per-file figures by
package (`bot`, `bot/cloudflare`, `bot/devslack`, `bot/simulator`, `handlers`, `blocks`), then the total.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import coverage


def by_package(data_file: str) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    """Return {package: (statements, covered)} and the total, from a combined coverage data file."""
    cov = coverage.Coverage(data_file=data_file)
    cov.load()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        cov.json_report(outfile=str(out))
        report = json.loads(out.read_text())
    packages: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, figures in report["files"].items():
        package = str(Path(name).parent)
        summary = figures["summary"]
        packages[package][0] += int(summary["num_statements"])
        packages[package][1] += int(summary["covered_lines"])
    totals = report["totals"]
    total = (int(totals["num_statements"]), int(totals["covered_lines"]))
    return {name: (s, c) for name, (s, c) in sorted(packages.items())}, total


def main(argv: list[str]) -> int:
    """Print the table; exit 1 when there is no data to report."""
    data_file = argv[0] if argv else ".coverage"
    if not Path(data_file).exists():
        print(f"no coverage data at {data_file}: run the tests first", file=sys.stderr)
        return 1
    packages, (statements, covered) = by_package(data_file)
    width = max(len(name) for name in [*packages, "TOTAL"])

    def row(name: str, stmts: int, hit: int) -> str:
        return f"{name:<{width}}  {stmts:>6}  {stmts - hit:>6}  {100 * hit / max(stmts, 1):>5.1f}%"

    print(f"{'package':<{width}}  {'stmts':>6}  {'miss':>6}  {'cover':>6}")
    for name, (stmts, hit) in packages.items():
        print(row(name, stmts, hit))
    print(row("TOTAL", statements, covered))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
