"""A run's history as plot-ready series, grown one batch of events at a time.

The live screen feeds it what `EventTail.poll()` returns; it sorts each event into lists of
(step, value) per quantity: loss and its components, lambda, discriminator accuracy, learning
rate, samples/s, and from the periodic dev evaluations recall@1 (overall, seen/unseen, per
language and per domain), CKA and probe accuracies. It copies numbers out of the events and
averages nothing but what it must to show one line per language or domain (the mean of the
pivot->x and x->pivot recall@1 the event already holds).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from xrdiag.core.layout.status import TERMINAL

LOG_LINES = 500


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class Line:
    """Steps and values of one series."""

    steps: list[float] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)

    def add(self, step: float, value: Any) -> None:
        self.steps.append(step)
        self.values.append(_num(value))

    def rewind(self, step: float) -> None:
        """Drop the points at `step` and after: a resumed run is redoing them."""
        while self.steps and self.steps[-1] >= step:
            self.steps.pop()
            self.values.pop()

    @property
    def xy(self) -> tuple[list[float], list[float | None]]:
        return self.steps, self.values


def _clock(value: Any) -> str:
    """`HH:MM:SS` of an event time; `--:--:--` for a missing or impossible one."""
    seconds = _num(value)
    if seconds is None:
        return "--:--:--"
    try:
        return time.strftime("%H:%M:%S", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "--:--:--"


def _fmt(value: Any) -> str:
    num = _num(value)
    return f"{num:.4g}" if num is not None else "-"


class RunSeries:
    """Everything the live screen plots, accumulated from a run's events."""

    def __init__(self) -> None:
        self.train: dict[str, Line] = defaultdict(Line)  # loss, components, lambda, lr, ...
        self.recall: dict[str, Line] = defaultdict(Line)  # mean, seen/unseen langs and domains
        self.recall_lang: dict[str, Line] = defaultdict(Line)
        self.recall_domain: dict[str, Line] = defaultdict(Line)
        self.alignment: dict[str, Line] = defaultdict(Line)  # cka, probe accuracies
        self.log: list[str] = []
        self.pending_log: list[str] = []  # lines not yet shown (drain_log)
        self.last_time: float | None = None
        self.step = 0
        self.max_steps: int | None = None
        self.pid: int | None = None
        self.host: str | None = None
        self.last_kind: str | None = None
        self.checkpoints: list[str] = []
        self.events = 0
        self._times: list[tuple[int, float]] = []  # (step, time) of step events

    # -- feeding ---------------------------------------------------------------------------

    def add(self, events: list[dict[str, Any]]) -> None:
        """Take a batch of events, in file order."""
        for event in events:
            self.events += 1
            kind = str(event.get("kind"))
            self.last_kind = kind
            step = event.get("step")
            if isinstance(step, int):
                self.step = step
            if isinstance(event.get("time"), int | float):
                self.last_time = float(event["time"])
            handler = getattr(self, f"_on_{kind}", None)
            if handler is not None:
                handler(event)
            self._log(event)
        self.log = self.log[-LOG_LINES:]

    def _writer(self, e: dict[str, Any]) -> None:
        pid, host = e.get("pid"), e.get("host")
        self.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
        self.host = host if isinstance(host, str) else None

    def _on_start(self, e: dict[str, Any]) -> None:
        self.max_steps = e.get("max_steps") if isinstance(e.get("max_steps"), int) else None
        self._writer(e)

    def _on_resume(self, e: dict[str, Any]) -> None:
        self._writer(e)
        self._times.clear()

    def _rewind(self, groups: list[dict[str, Line]], step: int) -> None:
        """A step (or eval) again at or below one already shown: the earlier attempt is void.

        After a kill and a resume from an older checkpoint, the events of the steps since that
        checkpoint come twice; the series keep the last of each (as the report's tables do).
        """
        for group in groups:
            for line in group.values():
                line.rewind(step)

    def _on_step(self, e: dict[str, Any]) -> None:
        s = e.get("step")
        if not isinstance(s, int):
            return
        self._rewind([self.train], s)
        while self._times and self._times[-1][0] >= s:
            self._times.pop()
        self.train["loss"].add(s, e.get("loss"))
        components = e.get("components")
        for name, value in (components if isinstance(components, dict) else {}).items():
            key = "disc_acc" if name.startswith("disc_") and name.endswith("_acc") else name
            self.train[key].add(s, value)
        for name in ("lambda", "lr", "grad_norm", "samples_per_s", "step_time"):
            if name in e:
                self.train[name].add(s, e.get(name))
        if isinstance(e.get("time"), int | float):
            self._times.append((s, float(e["time"])))

    def _on_checkpoint(self, e: dict[str, Any]) -> None:
        self.checkpoints.append(str(e.get("path")))

    def _on_eval(self, e: dict[str, Any]) -> None:
        s = e.get("step")
        if not isinstance(s, int):
            return
        self._rewind([self.recall, self.recall_lang, self.recall_domain, self.alignment], s)
        recall = e.get("recall@1")
        for name, value in (recall if isinstance(recall, dict) else {}).items():
            self.recall[name].add(s, value)
        rows = e.get("retrieval") if isinstance(e.get("retrieval"), list) else []
        self._per_group(s, [r for r in rows if isinstance(r, dict)])
        cka = e.get("cka") if isinstance(e.get("cka"), dict) else {}
        if "mean" in cka:
            self.alignment["cka"].add(s, cka.get("mean"))
        for probe, short in (("lang_probe", "lang"), ("domain_probe", "domain")):
            if isinstance(e.get(probe), dict):
                self.alignment[f"{short} probe"].add(s, e[probe].get("acc"))
                self.alignment[f"{short} chance"].add(s, e[probe].get("chance"))
        task = (e.get("task") or {}).get("accuracy") or {}
        for part in ("mono", "cross"):  # pair classification: the dev task accuracy
            if task.get(part) is not None:
                self.alignment[f"task {part}"].add(s, task[part])

    def _per_group(self, step: int, rows: list[dict[str, Any]]) -> None:
        """One recall@1 line per language (pooled domains) and per domain (all languages)."""
        by_lang: dict[str, list[float]] = defaultdict(list)
        by_domain: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            value = _num(row.get("value"))
            if value is None:
                continue
            if row.get("domain") == "all":
                pair = {row.get("src_lang"), row.get("tgt_lang")}
                for lang in pair:
                    by_lang[str(lang)].append(value)
            else:
                by_domain[str(row.get("domain"))].append(value)
        # The pivot appears in every pair: it is not a language of its own here.
        if by_lang:
            pivot = max(by_lang, key=lambda k: len(by_lang[k]))
            if len(by_lang) > 1:
                by_lang.pop(pivot)
        for lang, values in sorted(by_lang.items()):
            self.recall_lang[lang].add(step, sum(values) / len(values))
        for domain, values in sorted(by_domain.items()):
            self.recall_domain[domain].add(step, sum(values) / len(values))

    def _log(self, e: dict[str, Any]) -> None:
        kind, step = e.get("kind"), e.get("step", "")
        stamp = _clock(e.get("time"))
        if kind == "step":
            text = f"loss {_fmt(e.get('loss'))}  lr {_fmt(e.get('lr'))}"
        elif kind == "eval":
            text = f"dev recall@1 {_fmt((e.get('recall@1') or {}).get('mean'))}"
            task = (e.get("task") or {}).get("accuracy") or {}
            if task.get("mean") is not None:
                text += f"  task accuracy {_fmt(task['mean'])}"
        elif kind == "checkpoint":
            text = f"checkpoint {e.get('path')}"
        elif kind in ("start", "resume"):
            text = f"pid {e.get('pid')} on {e.get('host')}, device {e.get('device', '-')}"
        else:
            extras = {k: v for k, v in e.items() if k not in ("kind", "time", "step")}
            text = " ".join(f"{k}={v}" for k, v in extras.items())
        line = f"{stamp} {kind:<11} {step!s:>6}  {text}"
        self.log.append(line)
        self.pending_log.append(line)

    def drain_log(self) -> list[str]:
        """Log lines added since the last call."""
        lines, self.pending_log = self.pending_log[-LOG_LINES:], []
        return lines

    # -- reading ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.last_kind in TERMINAL

    def seconds_per_step(self, window: int = 20) -> float | None:
        """Wall-clock seconds per step over the last `window` step events (since a resume)."""
        times = self._times[-window:]
        if len(times) < 2 or times[-1][0] == times[0][0]:
            return None
        return (times[-1][1] - times[0][1]) / (times[-1][0] - times[0][0])

    def eta(self) -> float | None:
        """Seconds left at the recent pace; None when finished or not yet measurable."""
        if self.finished or self.max_steps is None:
            return None
        pace = self.seconds_per_step()
        return None if pace is None else max(0, self.max_steps - self.step) * pace

    def lines(self, group: dict[str, Line], names: list[str] | None = None) -> dict[str, Any]:
        """Plot-ready {name: (steps, values)} of a group, in `names` order when given."""
        keys = names if names is not None else list(group)
        return {k: group[k].xy for k in keys if k in group}
