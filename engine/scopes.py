"""Scopes: namespaces of object keys, workflow ids and idempotency keys (Restate's ``scope``).

A call made in scope ``S`` to object key ``K`` reaches a key of its own: ``K`` in ``S`` has
its own state, its own inbox and its own invocations, apart from ``K`` outside any scope. The
scope travels inside the key, so routing, state and locking need nothing new; handlers see the
plain key (``ctx.key()``). The byte layout of a scoped key never changes meaning.
"""

from __future__ import annotations

MARK = "\x1f"
"""Starts a scoped key and ends its scope: ``MARK + scope + MARK + key``."""


def scoped_key(scope: str | None, key: str) -> str:
    """``key`` in ``scope`` (``key`` itself when there is no scope)."""
    return key if scope is None else f"{MARK}{scope}{MARK}{key}"


def split_key(key: str) -> tuple[str | None, str]:
    """The scope and the plain key of a (possibly) scoped key."""
    if key.startswith(MARK):
        scope, sep, plain = key[1:].partition(MARK)
        if sep:
            return scope, plain
    return None, key


def check_scope(scope: str) -> str | None:
    """Why ``scope`` cannot be a scope name, or None if it can."""
    if not scope:
        return "a scope name cannot be empty"
    if MARK in scope:
        return "a scope name cannot contain the character U+001F"
    return None
