"""Django's SQLite backend with an opt-in BEGIN IMMEDIATE (Django 5.1's
`transaction_mode`, which 4.2 lacks).

`atomic()` starts a transaction with a plain (deferred) BEGIN: it reads under a shared
lock and asks for the write lock only at its first write, when another writer may have
changed what it read; SQLite then refuses it ("database is locked"). Inside
`with immediate():`, an outermost `atomic()` begins with BEGIN IMMEDIATE instead, taking
the write lock before the first read, so read-modify-writes queue up behind each other.
"""
import contextlib
import contextvars

from django.db.backends.sqlite3 import base

_immediate = contextvars.ContextVar("racy_sqlite_begin_immediate", default=False)


@contextlib.contextmanager
def immediate():
    token = _immediate.set(True)
    try:
        yield
    finally:
        _immediate.reset(token)


class DatabaseWrapper(base.DatabaseWrapper):
    def _start_transaction_under_autocommit(self):
        self.cursor().execute("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")
