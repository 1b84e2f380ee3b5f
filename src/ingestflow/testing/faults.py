"""Fault injection shared by the fake providers: a queue of next faults and/or a rate."""

from __future__ import annotations

import random
import threading
from collections import deque


def split_fault(fault: str | None) -> tuple[str | None, float | None]:
    """``"slow:2.5"`` -> ``("slow", 2.5)``: a kind may carry seconds; without them the
    fake's default applies."""
    if fault is None or ":" not in fault:
        return fault, None
    kind, _, arg = fault.partition(":")
    return kind, float(arg)


class FaultPlan:
    """Thread-safe: tests set faults from their thread while the server runs in another."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._rate = 0.0
        self._kinds: tuple[str, ...] = ()
        self._rng = random.Random(seed)
        self.down = False

    def inject(self, *kinds: str, times: int = 1) -> None:
        """The next ``times`` x len(kinds) requests fail with these kinds, in order."""
        with self._lock:
            for _ in range(times):
                self._queue.extend(kinds)

    def set_rate(self, rate: float, kinds: tuple[str, ...] | list[str], seed: int | None = None) -> None:
        """Each request fails with probability ``rate``, with a kind drawn from ``kinds``."""
        with self._lock:
            self._rate, self._kinds = rate, tuple(kinds)
            if seed is not None:
                self._rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rate, self._kinds, self.down = 0.0, (), False

    def next(self) -> str | None:
        with self._lock:
            if self.down:
                return "down"
            if self._queue:
                return self._queue.popleft()
            if self._rate and self._rng.random() < self._rate:
                return self._rng.choice(self._kinds)
            return None

    def configure(self, body: dict) -> None:
        """The ``POST /_control/faults`` body: {"inject": [...], "times": n, "rate": r,
        "kinds": [...], "seed": s, "down": bool, "clear": bool}."""
        if body.get("clear"):
            self.clear()
        if body.get("inject"):
            self.inject(*body["inject"], times=int(body.get("times", 1)))
        if "rate" in body:
            self.set_rate(float(body["rate"]), body.get("kinds", ()), body.get("seed"))
        if "down" in body:
            self.down = bool(body["down"])
