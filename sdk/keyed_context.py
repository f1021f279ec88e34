"""Contexts of keyed handlers: state for virtual objects and workflows, promises for workflows.

The context's type says what a handler may do: shared handlers read state, exclusive handlers
and a workflow's main handler also write it, and workflow handlers use durable promises.
State changes are journaled with the next journal entry (or with the completion) and become
visible to other invocations as soon as that entry is durable, as in Restate; a failed attempt's
unjournaled changes leave no trace. Reads are journaled too, riding on the next entry like
changes do, so that a replay reads what the first attempt read.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from perdure.engine.limits import failure_code
from perdure.engine.model import EntryKind, Failure, JournalEntry, StateOp, StateOpKind
from perdure.engine.scopes import split_key
from perdure.sdk import serde
from perdure.sdk.context import Context
from perdure.sdk.errors import TerminalError, checked_name

T = TypeVar("T")


class ObjectSharedContext(Context):
    """The context of a shared handler of a virtual object: reads state, concurrently."""

    def key(self) -> str:
        """The object key (or workflow id) this invocation runs for (without its scope)."""
        assert self._target is not None and self._target.key is not None
        return split_key(self._target.key)[1]

    async def get(self, name: str, type_hint: Any = None) -> Any:
        """The value of state entry ``name`` (converted to ``type_hint`` if given), or None.

        The read is journaled (with the next entry): a replay returns the same value even if
        the state changed since.
        """
        raw = self._read(StateOpKind.READ, checked_name(name, "state name"), self._state.get(name))
        return None if raw is None else serde.decode(raw, type_hint, what=f"state {name!r}")

    async def state_keys(self) -> list[str]:
        """The names of the state entries, sorted (journaled, like :meth:`get`)."""
        raw = self._read(StateOpKind.READ_KEYS, "", serde.encode(sorted(self._state), list[str]))
        return serde.decode(raw or b"[]", list[str], what="state keys")  # type: ignore[no-any-return]

    def set(self, name: str, value: Any) -> None:
        """Shared handlers may only read: always raises :class:`TerminalError`."""
        raise self._read_only("set")

    def clear(self, name: str) -> None:
        """Shared handlers may only read: always raises :class:`TerminalError`."""
        raise self._read_only("clear")

    def clear_all(self) -> None:
        """Shared handlers may only read: always raises :class:`TerminalError`."""
        raise self._read_only("clear_all")

    def _read_only(self, op: str) -> TerminalError:
        return TerminalError(
            f"ctx.{op}() in a shared handler: shared handlers may only read state", 500
        )

    def _change(self, op: StateOp) -> None:
        checked_name(op.name, "state name")
        if op.kind is StateOpKind.SET and op.value is not None:
            self._state[op.name] = op.value
        elif op.kind is StateOpKind.CLEAR:
            self._state.pop(op.name, None)
        elif op.kind is StateOpKind.CLEAR_ALL:
            self._state.clear()
        self._pending_ops.append(op)


class ObjectContext(ObjectSharedContext):
    """The context of an exclusive handler of a virtual object: reads and writes state."""

    def set(self, name: str, value: Any) -> None:
        """Sets state entry ``name`` (JSON, like handler payloads)."""
        self._change(StateOp(StateOpKind.SET, name, serde.encode(value)))

    def clear(self, name: str) -> None:
        """Removes state entry ``name``."""
        self._change(StateOp(StateOpKind.CLEAR, name))

    def clear_all(self) -> None:
        """Removes every state entry of this key."""
        self._change(StateOp(StateOpKind.CLEAR_ALL))


class DurablePromise(Generic[T]):
    """A named promise of a workflow id: completed once, read many times.

    Obtain it with ``ctx.promise(name)``.
    """

    def __init__(self, ctx: Context, name: str, type_hint: Any = None) -> None:
        self._ctx = ctx
        self.name = checked_name(name, "promise name")
        self._type = type_hint

    async def value(self) -> T:
        """Waits until the promise is resolved and returns its value (raises if rejected)."""
        entry = await self._ctx._record(
            EntryKind.GET_PROMISE,
            self.name,
            JournalEntry(EntryKind.GET_PROMISE, self.name, completed=False),
        )
        return self._ctx._outcome(entry, self._type)  # type: ignore[no-any-return]

    async def peek(self) -> T | None:
        """The value if the promise is resolved, None if it is not yet (raises if rejected)."""
        entry = await self._ctx._record(
            EntryKind.PEEK_PROMISE, self.name, JournalEntry(EntryKind.PEEK_PROMISE, self.name)
        )
        if entry.value is None and entry.failure is None:
            return None
        return self._ctx._outcome(entry, self._type)  # type: ignore[no-any-return]

    async def resolve(self, value: T) -> None:
        """Resolves the promise; raises :class:`TerminalError` (409) if it was completed."""
        await self._complete(
            JournalEntry(EntryKind.COMPLETE_PROMISE, self.name, serde.encode(value))
        )

    async def reject(self, message: str, status_code: int = 500) -> None:
        """Rejects the promise: readers get a :class:`TerminalError` with ``message``."""
        failure = Failure(*failure_code(status_code, message))
        await self._complete(JournalEntry(EntryKind.COMPLETE_PROMISE, self.name, failure=failure))

    async def _complete(self, entry: JournalEntry) -> None:
        done = await self._ctx._record(EntryKind.COMPLETE_PROMISE, self.name, entry)
        if done.failure is not None:
            raise TerminalError(done.failure.message, done.failure.code)


class WorkflowSharedContext(ObjectSharedContext):
    """The context of a workflow's shared handler: reads state, completes promises."""

    def promise(self, name: str, type_hint: Any = None) -> DurablePromise[Any]:
        """The workflow's durable promise ``name``."""
        return DurablePromise(self, name, type_hint)


class WorkflowContext(ObjectContext):
    """The context of a workflow's main handler: state and promises."""

    def promise(self, name: str, type_hint: Any = None) -> DurablePromise[Any]:
        """The workflow's durable promise ``name``."""
        return DurablePromise(self, name, type_hint)
