"""A tiny counter service: Flask + SQLAlchemy 2 on PostgreSQL.

POST /counters/<id>/add       naive read-modify-write (loses updates under concurrency)
POST /counters/<id>/add_safe  atomic UPDATE ... SET value = value + :amount
GET  /counters/<id>           current value as plain text
"""
import os
import time
from datetime import datetime

from flask import Flask, Response, request
from sqlalchemy import DateTime, create_engine, func, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.exceptions import HTTPException


class Base(DeclarativeBase):
    pass


class Counter(Base):
    __tablename__ = "counters"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(nullable=False)


class Hit(Base):
    __tablename__ = "hits"
    id: Mapped[int] = mapped_column(primary_key=True)  # SERIAL
    counter_id: Mapped[int] = mapped_column(nullable=False)
    amount: Mapped[int] = mapped_column(nullable=False)
    created_at: Mapped[datetime | None] = mapped_column(DateTime, server_default=func.now())


engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)


def init_db(timeout=60):
    """Wait for PostgreSQL to accept connections, then create missing tables."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with engine.begin() as conn:
                # Serialise table creation if several processes start at once.
                conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
                Base.metadata.create_all(conn)
            break
        except OperationalError as exc:
            if time.monotonic() > deadline:
                raise
            print(f"database not ready: {str(exc.orig).splitlines()[0]}", flush=True)
            time.sleep(1)
    # Don't hand pooled connections from the Gunicorn master to forked workers.
    engine.dispose()


init_db()
app = Flask(__name__)


def plain(body, status=200):
    return Response(body, status=status, mimetype="text/plain")


def form_params():
    amount = request.form.get("amount", 1, type=int)
    delay_ms = max(request.form.get("delay_ms", 0, type=int), 0)
    return amount, delay_ms


@app.errorhandler(HTTPException)
def http_error(exc):
    return plain(f"{exc.code} {exc.name}\n", exc.code)


@app.get("/")
def index():
    return plain("flask-counter: POST /counters/<id>/add, POST /counters/<id>/add_safe, "
                 "GET /counters/<id>\n")


@app.get("/counters/<int:counter_id>")
def show(counter_id):
    with Session(engine) as session:
        counter = session.get(Counter, counter_id)
        if counter is None:
            return plain("counter not found\n", 404)
        return plain(f"{counter.value}\n")


@app.post("/counters/<int:counter_id>/add")
def add(counter_id):
    """Read, think for a while, write back: the classic lost-update bug."""
    amount, delay_ms = form_params()
    with Session(engine) as session:
        counter = session.get(Counter, counter_id)
        if counter is None:
            return plain("counter not found\n", 404)
        time.sleep(delay_ms / 1000)
        new_value = counter.value + amount
        counter.value = new_value
        session.add(Hit(counter_id=counter_id, amount=amount))
        session.commit()
        return plain(f"ok {new_value}\n")


@app.post("/counters/<int:counter_id>/add_safe")
def add_safe(counter_id):
    """Let the database do the arithmetic: UPDATE ... SET value = value + amount."""
    amount, delay_ms = form_params()
    with Session(engine) as session:
        time.sleep(delay_ms / 1000)
        new_value = session.execute(
            update(Counter)
            .where(Counter.id == counter_id)
            .values(value=Counter.value + amount)
            .returning(Counter.value)
        ).scalar_one_or_none()
        if new_value is None:
            return plain("counter not found\n", 404)  # session closes -> rollback
        session.add(Hit(counter_id=counter_id, amount=amount))
        session.commit()
        return plain(f"ok {new_value}\n")
