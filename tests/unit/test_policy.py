"""Authorisation: operators, user groups (cached), channels; default deny."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.policy import (
    NOT_AN_OPERATOR,
    NOT_IN_CHANNEL,
    Decision,
    GroupMembershipCache,
    Operation,
    Policy,
    not_an_operator,
)


class Groups:
    """A fake `usergroups.users.list` that counts calls and can fail."""

    def __init__(self, members: dict[str, frozenset[str]], *, fail: bool = False) -> None:
        self.members = members
        self.fail = fail
        self.calls: list[str] = []

    async def __call__(self, group_id: str) -> frozenset[str]:
        self.calls.append(group_id)
        if self.fail:
            raise RuntimeError("slack is down")
        return self.members.get(group_id, frozenset())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(*operators: str, channels: frozenset[str] | None = None) -> Policy:
    return Policy(operators=frozenset(operators), channels=channels)


async def test_listed_users_may_operate_others_may_not() -> None:
    groups = Groups({})
    rules = policy("U1", "W2")
    assert await rules.can_operate("U1", resolve_group_members=groups)
    assert await rules.can_operate("W2", resolve_group_members=groups)
    refused = await rules.can_operate("U3", resolve_group_members=groups)
    assert refused == Decision(False, NOT_AN_OPERATOR)
    assert "SWEEP_OPERATORS" in refused.reason
    assert not rules.everyone


async def test_empty_user_is_denied() -> None:
    assert not await policy("U1").can_operate("", resolve_group_members=Groups({}))


async def test_group_members_may_operate() -> None:
    groups = Groups({"S1": frozenset({"U7"}), "S2": frozenset({"U8"})})
    rules = policy("S1", "S2")
    assert await rules.can_operate("U8", resolve_group_members=groups)
    decision = await rules.can_operate("U9", resolve_group_members=groups)
    assert not decision.allowed and decision.reason == NOT_AN_OPERATOR


async def test_listed_user_needs_no_group_lookup() -> None:
    groups = Groups({"S1": frozenset()})
    assert await policy("U1", "S1").can_operate("U1", resolve_group_members=groups)
    assert groups.calls == []


async def test_failing_group_lookup_denies_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    groups = Groups({"S1": frozenset({"U7"})}, fail=True)
    with caplog.at_level(logging.WARNING, logger="sweep.policy"):
        decision = await policy("S1").can_operate("U7", resolve_group_members=groups)
    assert not decision.allowed
    assert "could not check" in decision.reason
    assert "S1" in caplog.text and "slack is down" in caplog.text


async def test_one_failing_group_does_not_hide_another() -> None:
    calls: list[str] = []

    async def resolve(group_id: str) -> frozenset[str]:
        calls.append(group_id)
        if group_id == "SA":
            raise TimeoutError
        return frozenset({"U7"})

    assert await policy("SA", "SB").can_operate("U7", resolve_group_members=resolve)
    assert calls == ["SA", "SB"]


async def test_everyone() -> None:
    rules = policy("*")
    assert rules.everyone
    assert await rules.can_operate("U999", resolve_group_members=Groups({}, fail=True))


def test_channels() -> None:
    anywhere = policy("U1")
    assert anywhere.channel_allowed("C1") and anywhere.channel_allowed(None)
    assert anywhere.channels is None
    restricted = policy("U1", channels=frozenset({"C1", " G2 "}))
    assert restricted.channel_allowed("C1") and restricted.channel_allowed("G2")
    assert restricted.channel_allowed("C3") == Decision(False, NOT_IN_CHANNEL)
    assert not restricted.channel_allowed(None)
    assert not restricted.channel_allowed("")
    assert policy("U1", channels=frozenset({"*"})).channels is None


@pytest.mark.parametrize("bad", ["alice", "#general", "C123", "u1", "U1 x", "@U1", "general"])
def test_bad_operator_entries_fail_loudly(bad: str) -> None:
    with pytest.raises(ValueError, match="SWEEP_OPERATORS"):
        policy("U1", bad)


@pytest.mark.parametrize("bad", ["general", "#general", "c1", "U1"])
def test_bad_channel_entries_fail_loudly(bad: str) -> None:
    with pytest.raises(ValueError, match="SWEEP_CHANNELS"):
        policy("U1", channels=frozenset({bad}))


def test_entries_are_normalised() -> None:
    rules = policy(" U1 ", "S2", "")
    assert rules.users == frozenset({"U1"}) and rules.groups == ("S2",)


def test_decision_is_truthy_only_when_allowed() -> None:
    assert Decision.allow()
    assert not Decision.deny("no")
    assert Decision.deny("no").reason == "no"


# ---------------------------------------------------------------- the cache


async def test_cache_serves_within_ttl_and_refetches_after() -> None:
    groups = Groups({"S1": frozenset({"U1"})})
    clock = Clock()
    cache = GroupMembershipCache(groups, ttl_seconds=300, clock=clock)
    assert await cache.members("S1") == frozenset({"U1"})
    clock.now += 299
    groups.members["S1"] = frozenset({"U2"})
    assert await cache.members("S1") == frozenset({"U1"})
    assert groups.calls == ["S1"]
    clock.now += 1
    assert await cache.members("S1") == frozenset({"U2"})
    assert groups.calls == ["S1", "S1"]


async def test_cache_does_not_keep_failures_or_serve_stale_data() -> None:
    groups = Groups({"S1": frozenset({"U1"})})
    clock = Clock()
    cache = GroupMembershipCache(groups, ttl_seconds=10, clock=clock)
    await cache.members("S1")
    clock.now += 11
    groups.fail = True
    with pytest.raises(RuntimeError):
        await cache.members("S1")
    groups.fail = False
    assert await cache.members("S1") == frozenset({"U1"})


async def test_cache_shares_one_call_between_concurrent_lookups() -> None:
    release = asyncio.Event()
    calls: list[str] = []

    async def slow(group_id: str) -> frozenset[str]:
        calls.append(group_id)
        await release.wait()
        return frozenset({"U1"})

    cache = GroupMembershipCache(slow, clock=Clock())
    tasks = [asyncio.create_task(cache.members("S1")) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == [frozenset({"U1"})] * 5
    assert calls == ["S1"]


async def test_cache_invalidate() -> None:
    groups = Groups({"S1": frozenset({"U1"}), "S2": frozenset()})
    cache = GroupMembershipCache(groups, clock=Clock())
    await cache.members("S1")
    await cache.members("S2")
    cache.invalidate("S1")
    await cache.members("S1")
    await cache.members("S2")
    assert groups.calls == ["S1", "S2", "S1"]
    cache.invalidate()
    await cache.members("S2")
    assert groups.calls[-1] == "S2"


async def test_policy_with_the_cache() -> None:
    groups = Groups({"S1": frozenset({"U7"})})
    cache = GroupMembershipCache(groups, clock=Clock())
    rules = policy("S1")
    for _ in range(3):
        assert await rules.can_operate("U7", resolve_group_members=cache.members)
    assert groups.calls == ["S1"]


def test_negative_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        GroupMembershipCache(Groups({}), ttl_seconds=-1)


@pytest.mark.parametrize(
    ("operation", "words"),
    [
        (Operation.CREATE, "only Sweep operators may create jobs"),
        (Operation.CANCEL, "only Sweep operators may cancel jobs"),
        (Operation.WATCH, "only Sweep operators may watch jobs"),
        (Operation.OPEN_FORM, "only Sweep operators may open the create form"),
    ],
)
async def test_a_refusal_names_what_was_refused(operation: Operation, words: str) -> None:
    decision = await policy("U1").can_operate("U3", resolve_group_members=Groups({}), operation=operation)
    assert not decision.allowed and decision.reason.startswith(words)
    assert decision.reason == not_an_operator(operation)
    failed = await policy("S1").can_operate(
        "U3", resolve_group_members=Groups({}, fail=True), operation=operation
    )
    assert failed.reason.startswith(words) and "could not check" in failed.reason
