"""Fill in a modal the way a person would, producing the `view.state.values` Slack sends back."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


def state_from_view(view: JsonDict) -> dict[str, dict[str, JsonDict]]:
    """Return the state Slack sends when a view is submitted untouched (its initial values)."""
    state: dict[str, dict[str, JsonDict]] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        kind = element["type"]
        value: JsonDict = {"type": kind}
        if kind == "plain_text_input":
            value["value"] = element.get("initial_value")
        elif kind in {"static_select", "radio_buttons"}:
            value["selected_option"] = element.get("initial_option")
        elif kind == "datetimepicker":
            value["selected_date_time"] = element.get("initial_date_time")
        elif kind == "datepicker":
            value["selected_date"] = element.get("initial_date")
        elif kind == "checkboxes":
            value["selected_options"] = element.get("initial_options", [])
        state[block["block_id"]] = {element["action_id"]: value}
    return state


def fill(view: JsonDict, values: dict[str, Any]) -> dict[str, dict[str, JsonDict]]:
    """Return the submitted state of `view` after typing or picking `values` (keyed by block_id).

    Text inputs take the string; selects and radio buttons take an option's value; checkboxes take
    True (tick every option) or False.
    """
    state = state_from_view(view)
    elements = {b["block_id"]: b["element"] for b in view.get("blocks", []) if b.get("type") == "input"}
    for block_id, wanted in values.items():
        element = elements[block_id]
        entry = state[block_id][element["action_id"]]
        kind = element["type"]
        if kind == "plain_text_input":
            entry["value"] = wanted
        elif kind in {"static_select", "radio_buttons"}:
            options = element.get("options") or [
                o for g in element.get("option_groups", []) for o in g["options"]
            ]
            entry["selected_option"] = next((o for o in options if o["value"] == wanted), None)
        elif kind == "checkboxes":
            entry["selected_options"] = list(element.get("options", [])) if wanted else []
        elif kind == "datetimepicker":
            entry["selected_date_time"] = wanted
        else:
            entry["selected_date"] = wanted
    return state
