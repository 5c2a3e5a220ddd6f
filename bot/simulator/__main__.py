"""`python -m bot.simulator`: run the simulator (same options as `sweep-bot simulator`)."""

from __future__ import annotations

import sys

from bot.simulator.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
