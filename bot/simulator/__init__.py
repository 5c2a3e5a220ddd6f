"""A faithful local Cloudflare Email Security investigate API (aiohttp), for tests, benchmarks and the demo.

Modules: `app` (routes, `create_app`, `running_simulator`), `state` (jobs computed lazily from the
clock, and the FAILED/SKIPPED rules), `mailbox` (the seeded synthetic mailbox and search semantics),
`contract` (every request checked against Cloudflare's OpenAPI document, shipped beside it),
`validation` (the rules the document cannot state, and the error codes), `faults` (runtime fault
injection) and `server` (the `sweep-bot simulator` command).
"""
