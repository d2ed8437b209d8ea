"""Django's SQLite backend with an opt-in BEGIN IMMEDIATE or BEGIN EXCLUSIVE (Django
5.1's `transaction_mode`, which 4.2 lacks).

`atomic()` starts a transaction with a plain (deferred) BEGIN: it reads under a shared
lock and asks for the write lock only at its first write, when another writer may have
changed what it read; SQLite then refuses it ("database is locked"). Inside
`with begin("IMMEDIATE"):`, an outermost `atomic()` begins with BEGIN IMMEDIATE instead,
taking the write lock before the first read, so read-modify-writes queue up behind each
other. BEGIN EXCLUSIVE (seed 002's own example) takes it before the first read as well,
and in a rollback journal also keeps readers out until the commit.
"""
import contextlib
import contextvars

from django.db.backends.sqlite3 import base

MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")
_mode = contextvars.ContextVar("racy_sqlite_begin_mode", default="DEFERRED")


@contextlib.contextmanager
def begin(mode):
    """Outermost `atomic()` blocks inside begin with `BEGIN <mode>`."""
    if mode not in MODES:
        raise ValueError(f"BEGIN {mode}: expected one of {MODES}")
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


class DatabaseWrapper(base.DatabaseWrapper):
    def _start_transaction_under_autocommit(self):
        mode = _mode.get()
        self.cursor().execute("BEGIN" if mode == "DEFERRED" else f"BEGIN {mode}")
