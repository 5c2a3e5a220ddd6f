"""Slack listeners, one module per feature; `register` attaches them all to the app.

Each feature module holds top-level `handle_…` functions and its own `register(app, services)`;
`handlers._listen` writes the ack-then-after-ack shape, payload decoding and the operator check once.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from handlers import approval, cancel, commands, create, create_form, jobs_list
from handlers._common import Services

__all__ = ["Services", "register"]


def register(app: AsyncApp, services: Services) -> None:
    """Attach every listener: `/sweep`, the buttons, the modal's controls and submissions."""
    commands.register(app, services)
    create.register(app, services)
    create_form.register(app, services)
    cancel.register(app, services)
    jobs_list.register(app, services)
    approval.register(app, services)
