"""``ctx.publish`` and Restate's awakeable ids in the TestRuntime (issue 31, fault 9).

On the main this issue started from, the runtime's invoker had no publisher: a publishing
handler failed after 20 attempts with ``PublishError('this worker cannot publish')``, and
``resolve_awakeable`` refused ``sign_1`` ids.
"""

from __future__ import annotations

import pytest

from perdure import Context, Endpoint, Service, TerminalError
from perdure.engine.ids import signal_awakeable_id
from perdure.partitions.testing import TestRuntime

svc = Service("notifier")


@svc.handler()
async def announce(ctx: Context, who: str) -> str:
    await ctx.run("prepare", lambda: who)
    aid, answer = ctx.awakeable(str)
    await ctx.publish("approvals", {"who": who, "awakeable": aid}, key=who)
    return str(await answer)


app = Endpoint([svc])


@pytest.mark.asyncio
async def test_a_publish_reaches_its_topic_once_through_crashes_before_and_after_it() -> None:
    async with TestRuntime(app) as rt:
        rt.crash_every_step()
        sent = await rt.send(announce, "ann")
        await rt.settle()
        records = rt.published("approvals")
        assert len(records) == 1, records
        assert records[0].key == b"ann"
        aid = rt.awakeables(sent.id)[0]
        assert aid in (records[0].value or b"").decode()
        await rt.resolve_awakeable(aid, "yes")
        assert await sent.result() == "yes"
    assert any(c.name == "approvals" for c in rt.crashes), "the publish itself was crashed"


@pytest.mark.asyncio
async def test_a_restate_sdk_awakeable_id_is_read_and_a_forged_one_is_a_404() -> None:
    async with TestRuntime(app) as rt:
        sent = await rt.send(announce, "bob")
        await rt.settle()
        with pytest.raises(TerminalError) as err:
            # A signal no Restate SDK opened: the partition keeps it for the invocation
            # until it ends (engine/awakeables.py), so a well-formed id is taken...
            await rt.resolve_awakeable(signal_awakeable_id(sent.id, 17) + "x", "no")
        assert err.value.status_code == 404, "...and a malformed one is not"
        await rt.resolve_awakeable(signal_awakeable_id(sent.id, 17), "kept")
        await rt.resolve_awakeable(rt.awakeables(sent.id)[0], "yes")
        assert await sent.result() == "yes"
