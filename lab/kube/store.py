"""Objects, resource versions, history for watches, and a SQLite file so state survives a restart.

Everything runs on the server's event loop, so each call is atomic.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from vmwave_lab.kube.resources import RESOURCES, Resource

HISTORY = 20000  # events kept per resource type for watches that resume from a resourceVersion


class Gone(Exception):
    """The requested resourceVersion is older than the history (410)."""


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self, path: Path | None):
        self.rv = 0
        self.objects: dict[str, dict[tuple[str, str], dict]] = {r.key: {} for r in RESOURCES}
        self.history: dict[str, deque] = {r.key: deque(maxlen=HISTORY) for r in RESOURCES}
        self.oldest: dict[str, int] = {r.key: 0 for r in RESOURCES}
        self.watchers: dict[str, set[asyncio.Queue]] = {r.key: set() for r in RESOURCES}
        self.owned: dict[str, set[tuple[str, str, str]]] = {}  # owner uid -> (resource key, ns, name)
        self.by_key = {r.key: r for r in RESOURCES}
        self.db = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS objects (key TEXT, ns TEXT, name TEXT, body TEXT, PRIMARY KEY (key, ns, name))"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
        for key, ns, name, body in self.db.execute("SELECT key, ns, name, body FROM objects"):
            if key in self.objects:
                self.objects[key][(ns, name)] = json.loads(body)
        for key, objects in self.objects.items():
            for (ns, name), obj in objects.items():
                self._index(key, ns, name, obj, add=True)
        row = self.db.execute("SELECT v FROM meta WHERE k = 'rv'").fetchone()
        self.rv = int(row[0]) if row else 0
        for key in self.oldest:
            self.oldest[key] = self.rv

    def get(self, r: Resource, ns: str, name: str) -> dict | None:
        obj = self.objects[r.key].get((ns, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, r: Resource, ns: str | None) -> Iterator[dict]:
        for (obj_ns, _), obj in sorted(self.objects[r.key].items()):
            if ns is None or obj_ns == ns:
                yield obj

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _index(self, key: str, ns: str, name: str, obj: dict, add: bool) -> None:
        for ref in obj["metadata"].get("ownerReferences") or ():
            owned = self.owned.setdefault(ref.get("uid", ""), set())
            (owned.add if add else owned.discard)((key, ns, name))

    def _persist(self, r: Resource, ns: str, name: str, obj: dict | None) -> None:
        if obj is None:
            self.db.execute("DELETE FROM objects WHERE key = ? AND ns = ? AND name = ?", (r.key, ns, name))
        else:
            self.db.execute("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", (r.key, ns, name, json.dumps(obj)))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(self.rv),))

    def _emit(self, r: Resource, kind: str, obj: dict) -> None:
        event = (self.rv, kind, copy.deepcopy(obj))
        if len(self.history[r.key]) == self.history[r.key].maxlen:
            self.oldest[r.key] = self.history[r.key][0][0]
        self.history[r.key].append(event)
        for queue in list(self.watchers[r.key]):
            queue.put_nowait(event)

    def create(self, r: Resource, obj: dict) -> dict:
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1, resourceVersion=self._next_rv())
        ns = meta.get("namespace", "")
        self.objects[r.key][(ns, meta["name"])] = obj
        self._index(r.key, ns, meta["name"], obj, add=True)
        self._persist(r, ns, meta["name"], obj)
        self._emit(r, "ADDED", obj)
        return copy.deepcopy(obj)

    def update(self, r: Resource, obj: dict) -> dict:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        old = self.objects[r.key][(ns, meta["name"])]
        if {k: v for k, v in obj.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")
        }:
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        for fixed in ("uid", "creationTimestamp"):
            meta[fixed] = old["metadata"][fixed]
        meta["resourceVersion"] = self._next_rv()
        self._index(r.key, ns, meta["name"], old, add=False)
        self.objects[r.key][(ns, meta["name"])] = obj
        self._index(r.key, ns, meta["name"], obj, add=True)
        self._persist(r, ns, meta["name"], obj)
        self._emit(r, "MODIFIED", obj)
        return copy.deepcopy(obj)

    def delete(self, r: Resource, ns: str, name: str) -> dict:
        obj = self.objects[r.key].pop((ns, name))
        self._index(r.key, ns, name, obj, add=False)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._persist(r, ns, name, None)
        self._emit(r, "DELETED", obj)
        return obj

    def dependents(self, uid: str) -> list[tuple[Resource, dict]]:
        """Objects whose ownerReferences name the deleted owner ``uid`` (indexed, not a scan); forgets the owner."""
        found = []
        for key, ns, name in sorted(self.owned.pop(uid, ())):
            obj = self.objects[key].get((ns, name))
            if obj is not None:
                found.append((self.by_key[key], obj))
        return found

    def events_since(self, r: Resource, since: int) -> list[tuple[int, str, dict]]:
        if since < self.oldest[r.key]:
            raise Gone(f"too old resource version: {since} ({self.oldest[r.key]})")
        return [e for e in self.history[r.key] if e[0] > since]

    def subscribe(self, r: Resource) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self.watchers[r.key].add(queue)
        return queue

    def unsubscribe(self, r: Resource, queue: asyncio.Queue) -> None:
        self.watchers[r.key].discard(queue)
