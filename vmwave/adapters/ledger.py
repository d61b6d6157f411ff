"""The migration ledger: durable state per VM and step, so any wave can resume after a crash.

A SQLite file or any SQLAlchemy URL (PostgreSQL when several workers share
it); ``vmwave.settings`` decides which. ``Ledger`` records what each step of
each VM did; its ``claims`` say which worker runs a VM, its ``requests`` what a
person asked of one. Prefect's own database is not the
ledger: it drops task runs in ephemeral mode and ingests slowly. A wave's run
opens one ``Ledger`` (one engine) for all its
steps and threads (``vmwave_tasks.clients.open_clients``) and closes it at its end.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError, ProgrammingError

from vmwave.domain.steps import DONE
from vmwave.errors import ConnectionFailed, InputError

STATUSES = ("running", "succeeded", "failed", "skipped", "rolled_back")

metadata = MetaData()
steps = Table(
    "steps",
    metadata,
    Column("wave", String(64), primary_key=True),
    Column("vm_key", String(160), primary_key=True),  # which VM: its vCenter and its instance UUID (SourceVM.key)
    Column("step", String(32), primary_key=True),
    Column("vm", String(256), nullable=False),
    Column("moref", String(80), default=""),  # shown, never a key: every vCenter has a vm-137
    Column("uuid", String(64), default=""),  # the VM's instance UUID: what a person's request names
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("bytes", BigInteger, default=0),
    Column("error", Text, default=""),
    Column("cause", String(64), default=""),
    Column("detail", JSON, default=dict),
)
claims = Table(  # which worker runs a VM now: several workers may run one wave, each VM runs on one
    "claims",
    metadata,
    Column("wave", String(64), primary_key=True),
    Column("vm_key", String(160), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("heartbeat", DateTime(timezone=True), nullable=False),
)
CLAIM_STALE_SECONDS = 60  # a claim not refreshed for this long belongs to a dead worker
waves = Table(  # each wave's last run: what the metrics count its VMs against (`vmwave exporter`)
    "waves",
    metadata,
    Column("wave", String(64), primary_key=True),
    Column("cls", String(16), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("members", JSON, default=dict),  # VM key -> the VM's class: a VM with no step yet is pending
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
)
cancels = Table(  # a person asked to stop one VM (the plan's, by its uuid) (`vmwave cancel`); its worker takes it
    "cancels",
    metadata,
    Column("wave", String(64), primary_key=True),
    Column("uuid", String(96), primary_key=True),
    Column("requested_at", DateTime(timezone=True), nullable=False),
)

cutovers = Table(  # a person asked a warm VM (uuid) or a whole wave ("*") to cut over now (`vmwave cutover`)
    "cutovers",
    metadata,
    Column("wave", String(64), primary_key=True),
    Column("uuid", String(96), primary_key=True),
    Column("requested_at", DateTime(timezone=True), nullable=False),
)


meta = Table(  # what the ledger is: its id, the run label of every object it made (vmwave.io/run)
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Ledger:
    def __init__(self, url: str):
        self.url = url
        shown = make_url(url).render_as_string(hide_password=True) if "://" in url else url
        try:
            self.engine: Engine = create_engine(url, future=True)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise InputError(
                "VMWAVE_LEDGER",
                "",
                f"{shown} is not a database vmwave can use ({exc})",
                "give a file path (SQLite) or postgresql+psycopg://USER@HOST/DB (pip install 'vmwave[postgresql]')",
            ) from None
        if self.engine.dialect.name == "sqlite":
            Path(self.engine.url.database or ".").parent.mkdir(parents=True, exist_ok=True)

            @event.listens_for(self.engine, "connect")
            def _pragmas(connection, _record):  # several processes write one file
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA busy_timeout=10000")

        try:
            _create(self.engine)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
            raise ConnectionFailed(
                f"the ledger's database {shown} cannot be reached: {reason}",
                "start it, or point VMWAVE_LEDGER at one that runs",
                cause="ledger-unreachable",
            ) from None
        self.claims = Claims(self.engine)
        self.requests = Requests(self.engine)

    @functools.cached_property
    def run_id(self) -> str:
        """This ledger's id: every object its runs make carries it (``vmwave.io/run``), so a run never takes over,
        or undoes, what a run of another ledger made; a rerun with this ledger finds its own."""

        def read() -> str | None:
            with self.engine.connect() as conn:
                return conn.execute(select(meta.c.value).where(meta.c.key == "run_id")).scalar()

        found = read()
        if found is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(meta.insert().values(key="run_id", value=uuid.uuid4().hex[:16]))
            except IntegrityError:  # another worker made it first
                pass
            found = read()
        return found

    def adopt(self, vcenter: str, vms: dict[str, tuple[str, str]]) -> None:
        """What a ledger recorded before it knew vCenters (``moref:`` keys) becomes these VMs' (moref -> (key,
        uuid)), for the first vCenter that runs with it: the one it was written with, as one ledger served one
        vCenter then. Another vCenter adopts nothing: its vm-137 is another VM."""
        with self.engine.begin() as conn:
            if not conn.execute(select(steps.c.vm_key).where(steps.c.vm_key.startswith(LEGACY)).limit(1)).first():
                return
            claimed = conn.execute(
                meta.update().where((meta.c.key == "legacy") & (meta.c.value == "moref")).values(value=vcenter)
            ).rowcount
            owner = conn.execute(select(meta.c.value).where(meta.c.key == "legacy")).scalar()
            if not (claimed or owner == vcenter):
                return
            moved = [{"old": LEGACY + moref, "key": key, "uuid": uuid} for moref, (key, uuid) in vms.items()]
            if not moved:
                return
            conn.execute(
                steps.update()
                .where(steps.c.vm_key == bindparam("old"))
                .values(vm_key=bindparam("key"), uuid=bindparam("uuid")),
                moved,
            )
            conn.execute(
                claims.update().where(claims.c.vm_key == bindparam("old")).values(vm_key=bindparam("key")), moved
            )
            for table in (cancels, cutovers):
                conn.execute(
                    table.update().where(table.c.uuid == bindparam("old")).values(uuid=bindparam("uuid")), moved
                )
            renamed = {m["old"]: m["key"] for m in moved}
            for wave, members in conn.execute(select(waves.c.wave, waves.c.members)).all():
                if any(k in renamed for k in members or {}):
                    conn.execute(
                        waves.update()
                        .where(waves.c.wave == wave)
                        .values(members={renamed.get(k, k): v for k, v in members.items()})
                    )

    def close(self) -> None:
        """Its connections go back to the database."""
        self.engine.dispose()

    def _key(self, wave: str, key: str, step: str):
        return (steps.c.wave == wave) & (steps.c.vm_key == key) & (steps.c.step == step)

    def get(self, wave: str, key: str, step: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(steps).where(self._key(wave, key, step))).mappings().first()
        return dict(row) if row else None

    def done(self, wave: str, key: str, step: str) -> bool:
        row = self.get(wave, key, step)
        return row is not None and row["status"] in DONE

    def start(self, wave: str, key: str, vm: str, step: str, moref: str = "", uuid: str = "") -> int:
        """Record an attempt of ``step`` of the VM ``key`` (named ``vm``); returns the attempt number (1 for the
        first)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(steps.c.attempt).where(self._key(wave, key, step))).first()
            return self._attempt(conn, row[0] if row else None, wave, key, vm, step, moref, uuid)

    def begin(self, wave: str, key: str, vm: str, step: str, moref: str = "", uuid: str = "") -> dict[str, Any] | None:
        """What ``step`` recorded when it already finished (a rerun skips it), else None with a new attempt of it
        recorded: one transaction where asking, then starting, took two for every step of every VM."""
        with self.engine.begin() as conn:
            row = conn.execute(select(steps).where(self._key(wave, key, step))).mappings().first()
            if row is not None and row["status"] in DONE:
                return dict(row)
            self._attempt(conn, row["attempt"] if row else None, wave, key, vm, step, moref, uuid)
        return None

    def _attempt(
        self, conn: Connection, last: int | None, wave: str, key: str, vm: str, step: str, moref: str, uuid: str
    ) -> int:
        attempt = (last or 0) + 1
        values = {
            "vm": vm,
            "moref": moref,
            "uuid": uuid,
            "status": "running",
            "attempt": attempt,
            "started_at": _now(),
            "finished_at": None,
            "error": "",
            "cause": "",
        }
        if last is not None:
            conn.execute(steps.update().where(self._key(wave, key, step)).values(**values))
        else:
            conn.execute(steps.insert().values(wave=wave, vm_key=key, step=step, bytes=0, detail={}, **values))
        return attempt

    def finish(
        self,
        wave: str,
        key: str,
        step: str,
        status: str = "succeeded",
        bytes_done: int = 0,
        detail: dict[str, Any] | None = None,
        error: str = "",
        cause: str = "",
    ) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown step status {status!r}")
        values = {"status": status, "finished_at": _now(), "bytes": bytes_done, "error": error, "cause": cause}
        if detail is not None:  # a failure keeps what the step noted while it ran
            values["detail"] = detail
        with self.engine.begin() as conn:
            conn.execute(steps.update().where(self._key(wave, key, step)).values(**values))

    def mark(
        self, wave: str, key: str, step: str, status: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        """Change a step's status or detail, keeping its times and bytes (a rollback, notes while one runs)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown step status {status!r}")
        values = {k: v for k, v in (("status", status), ("detail", detail)) if v is not None}
        with self.engine.begin() as conn:
            conn.execute(steps.update().where(self._key(wave, key, step)).values(**values))

    def forget(self, wave: str, key: str) -> None:
        """What this ledger recorded of the VM in the wave, gone: it is migrated again (``--redo``)."""
        with self.engine.begin() as conn:
            conn.execute(steps.delete().where((steps.c.wave == wave) & (steps.c.vm_key == key)))

    def worked_on_since(self, wave: str, key: str, since: datetime) -> bool:
        """Whether any step of the VM started at or after ``since``: another worker ran it meanwhile."""
        query = (
            select(steps.c.step)
            .where((steps.c.wave == wave) & (steps.c.vm_key == key) & (steps.c.started_at >= since))
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def begin_wave(self, wave: str, cls: str, mode: str, members: dict[str, str]) -> None:
        """A run of ``wave`` starts with these VMs (key -> class); a second worker joining it keeps its start."""
        with self.engine.begin() as conn:
            row = conn.execute(select(waves.c.finished_at).where(waves.c.wave == wave)).first()
            values = {"cls": cls, "mode": mode, "members": members}
            if row is None:
                conn.execute(waves.insert().values(wave=wave, started_at=_now(), finished_at=None, **values))
            else:
                restart = {"started_at": _now(), "finished_at": None} if row[0] is not None else {}
                conn.execute(waves.update().where(waves.c.wave == wave).values(**values, **restart))
            if row is None or row[0] is not None:  # a new run: cutovers asked of an earlier one are done
                conn.execute(cutovers.delete().where(cutovers.c.wave == wave))

    def end_wave(self, wave: str) -> None:
        """The run of ``wave`` ended, once no worker runs any of its VMs."""
        if not self.claims.claimed(wave):
            with self.engine.begin() as conn:
                conn.execute(waves.update().where(waves.c.wave == wave).values(finished_at=_now()))

    def size_bytes(self) -> int:
        """What the ledger takes on disk: its SQLite file (and write-ahead log), or its PostgreSQL database."""
        if self.engine.dialect.name == "sqlite":
            base = Path(self.engine.url.database or "")
            return sum(f.stat().st_size for f in (base, base.with_name(base.name + "-wal")) if f.is_file())
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())

    def waves(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                {**dict(r), "class": r["cls"]} for r in conn.execute(select(waves).order_by(waves.c.wave)).mappings()
            ]

    def rows(self, wave: str | None = None) -> list[dict[str, Any]]:
        query = select(steps).order_by(steps.c.wave, steps.c.vm, steps.c.started_at)
        if wave:
            query = query.where(steps.c.wave == wave)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def by_vm(self, wave: str | None = None) -> list[dict[str, Any]]:
        """Per VM, its steps in order: what `vmwave status --json` prints."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for row in self.rows(wave):
            entry = found.setdefault(
                (row["wave"], row["vm_key"]),
                {
                    "wave": row["wave"],
                    "vm": row["vm"],
                    "key": row["vm_key"],
                    "moref": row["moref"],
                    "uuid": row["uuid"],
                    "steps": [],
                },
            )
            entry["steps"].append(
                {
                    "step": row["step"],
                    "status": row["status"],
                    "attempts": row["attempt"],
                    "cause": row["cause"],
                    "error": row["error"],
                    "bytes": row["bytes"],
                    "detail": row["detail"] or {},
                    "started_at": row["started_at"].isoformat() if row["started_at"] else None,
                    "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
                    "seconds": round((row["finished_at"] - row["started_at"]).total_seconds(), 3)
                    if row["finished_at"] and row["started_at"]
                    else None,
                }
            )
        return list(found.values())


LEGACY = "moref:"  # the key of a VM recorded before the ledger knew its vCenter: ``adopt`` gives it its own
_KEYED_BY_MOREF = ("steps", "claims", "cancels", "cutovers")


SCHEMA_LOCK = 0x766D77617665  # "vmwave": PostgreSQL's advisory lock while one worker makes the tables


class Claims:
    """Which worker runs a VM of a wave now: several workers may run one wave, each VM runs on one."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def claim(self, wave: str, key: str, owner: str) -> str:
        """Take the VM for ``owner``: ``new``, ``mine`` (already), ``taken-over`` (from a dead worker) or ``busy``."""
        where = (claims.c.wave == wave) & (claims.c.vm_key == key)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(select(claims).where(where)).mappings().first()
                if row is None:
                    conn.execute(claims.insert().values(wave=wave, vm_key=key, owner=owner, heartbeat=_now()))
                    return "new"
                if row["owner"] == owner:
                    return "mine"
                beat = row["heartbeat"] if row["heartbeat"].tzinfo else row["heartbeat"].replace(tzinfo=timezone.utc)
                if (_now() - beat).total_seconds() < CLAIM_STALE_SECONDS:
                    return "busy"
                taken = conn.execute(
                    claims.update()
                    .where(where & (claims.c.owner == row["owner"]))
                    .values(owner=owner, heartbeat=_now())
                )
                return "taken-over" if taken.rowcount == 1 else "busy"
        except IntegrityError:  # another worker inserted it first
            return "busy"

    def refresh_claims(self, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(claims.update().where(claims.c.owner == owner).values(heartbeat=_now()))

    def release_claim(self, wave: str, key: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                claims.delete().where((claims.c.wave == wave) & (claims.c.vm_key == key) & (claims.c.owner == owner))
            )

    def claimed(self, wave: str) -> int:
        """How many of the wave's VMs some worker runs now."""
        with self.engine.connect() as conn:
            return len(conn.execute(select(claims.c.vm_key).where(claims.c.wave == wave)).all())


class Requests:
    """What a person asked of a running VM (`vmwave cancel`, `vmwave cutover`), made by the CLI on any machine and
    taken by whichever worker runs the VM."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def request_cancel(self, wave: str, uuid: str) -> None:
        """Ask whichever worker runs the VM to stop and roll it back; asking twice is asking once."""
        with self.engine.begin() as conn:
            if conn.execute(select(cancels.c.uuid).where((cancels.c.wave == wave) & (cancels.c.uuid == uuid))).first():
                return
            conn.execute(cancels.insert().values(wave=wave, uuid=uuid, requested_at=_now()))

    def take_cancel(self, wave: str, uuid: str) -> bool:
        """Whether a cancel was asked for the VM; it is taken (removed), so a rerun of the wave migrates it again.

        Asked before every step and every few seconds of a wait: a read, which never waits on the ledger's writers;
        only a cancel found is taken in a write."""
        where = (cancels.c.wave == wave) & (cancels.c.uuid == uuid)
        with self.engine.connect() as conn:
            if conn.execute(select(cancels.c.uuid).where(where)).first() is None:
                return False
        with self.engine.begin() as conn:
            return conn.execute(cancels.delete().where(where)).rowcount > 0

    def request_cutover(self, wave: str, uuid: str = "*") -> None:
        """Ask a warm VM (or every VM of the wave, "*") to stop its precopy and cut over; asking twice is once."""
        where = (cutovers.c.wave == wave) & (cutovers.c.uuid == uuid)
        with self.engine.begin() as conn:
            if conn.execute(select(cutovers.c.uuid).where(where)).first() is None:
                conn.execute(cutovers.insert().values(wave=wave, uuid=uuid, requested_at=_now()))

    def cutover_requested(self, wave: str, uuid: str) -> bool:
        query = select(cutovers.c.uuid).where((cutovers.c.wave == wave) & cutovers.c.uuid.in_([uuid, "*"]))
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None


def _create(engine: Engine) -> None:
    """The tables, made once however many workers open a new ledger at the same moment (PostgreSQL makes a
    table's type before it checks IF NOT EXISTS, so two at once collide): one at a time, under a lock."""
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
                elif engine.dialect.name == "sqlite":  # its tables made or rewritten in one transaction, one at a time
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                _upgrade(conn)
                metadata.create_all(conn)
            return
        except (IntegrityError, ProgrammingError):  # another database's race: try again
            if attempt == 2:
                raise


def _upgrade(conn: Connection) -> None:
    """A ledger of an earlier vmwave, whose VMs were keyed by moref alone, rewritten in place on open: each VM's
    rows keep ``moref:<moref>`` as their key until ``adopt``."""
    found = inspect(conn)
    names = set(found.get_table_names())
    if "steps" not in names or "vm_key" in {c["name"] for c in found.get_columns("steps")}:
        return
    tables = [name for name in _KEYED_BY_MOREF if name in names]
    old = MetaData()
    old.reflect(conn, only=tables)
    rows = {name: [dict(r) for r in conn.execute(select(old.tables[name])).mappings()] for name in tables}
    old.drop_all(conn)
    metadata.create_all(conn)
    keyed = {
        "steps": lambda r: {**r, "vm_key": LEGACY + r["moref"], "uuid": ""},
        "claims": lambda r: {**{k: v for k, v in r.items() if k != "moref"}, "vm_key": LEGACY + r["moref"]},
        "cancels": lambda r: {"wave": r["wave"], "uuid": LEGACY + r["moref"], "requested_at": r["requested_at"]},
        "cutovers": lambda r: {
            "wave": r["wave"],
            "uuid": r["moref"] if r["moref"] == "*" else LEGACY + r["moref"],
            "requested_at": r["requested_at"],
        },
    }
    for name, found_rows in rows.items():
        if found_rows:
            conn.execute(metadata.tables[name].insert(), [keyed[name](r) for r in found_rows])
    for wave, members in conn.execute(select(waves.c.wave, waves.c.members)).all():
        conn.execute(
            waves.update()
            .where(waves.c.wave == wave)
            .values(members={LEGACY + k: v for k, v in (members or {}).items()})
        )
    conn.execute(meta.insert().values(key="legacy", value="moref"))


def dumps(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, indent=1)
