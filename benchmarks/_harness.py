"""What the benchmark suites share: compiling, timing, describing the machine, writing reports.

* :func:`compile_timed` compiles with ``jax.jit(fn).lower(*args).compile()`` and returns the
  executable with its compile time and its temporary memory
  (``memory_analysis().temp_size_in_bytes``, ``None`` where the backend does not report it).
* :func:`warm_up` and :func:`rounds` call zero-argument functions, each call ended by
  ``jax.block_until_ready``; in every round each function runs once in turn, so that a change
  in a shared machine's load hits all of them alike. :func:`median_ms` and :func:`min_ms`
  summarise the seconds per call.
* :func:`machine_description` says what the numbers were measured on, and :func:`header_lines`,
  :func:`targets_table` and :func:`write_results` write the parts of the reports the suites
  have in common.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

QUICK_REPEATS = 2
NONE = "–"  # a table cell without a value

# ----------------------------------------------------------------------------------------------
# Command line.


class ArgumentParser(argparse.ArgumentParser):
    """``--quick``, ``--out``, ``--repeats`` and ``--warmup``, with the suite's defaults.

    :meth:`parse` fills in ``repeats`` (``QUICK_REPEATS`` with ``--quick``) and ``warmup``
    (``quick_warmup`` with ``--quick`` where given) when they are not on the command line.
    """

    def __init__(
        self, description: str, *, repeats: int, warmup: int, quick_warmup: int | None = None
    ) -> None:
        super().__init__(description=description)
        self.repeats = repeats
        self.warmup = warmup
        self.quick_warmup = warmup if quick_warmup is None else quick_warmup
        quick_note = "" if self.quick_warmup == warmup else f", {self.quick_warmup} with --quick"
        self.add_argument(
            "--quick", action="store_true", help=f"tiny shapes, {QUICK_REPEATS} rounds (smoke test)"
        )
        self.add_argument("--out", default="benchmarks/results", help="output folder")
        self.add_argument(
            "--repeats",
            type=int,
            default=None,
            help=f"timed rounds (default {repeats}, {QUICK_REPEATS} with --quick)",
        )
        self.add_argument(
            "--warmup",
            type=int,
            default=None,
            help=f"warm-up calls (default {warmup}{quick_note})",
        )

    def parse(self, argv: Sequence[str] | None) -> argparse.Namespace:
        """``parse_args``, then ``repeats`` and ``warmup`` filled in where not given."""
        parsed = self.parse_args(argv)
        if parsed.repeats is None:
            parsed.repeats = QUICK_REPEATS if parsed.quick else self.repeats
        if parsed.warmup is None:
            parsed.warmup = self.quick_warmup if parsed.quick else self.warmup
        return parsed


# ----------------------------------------------------------------------------------------------
# Compiling and timing.


@dataclasses.dataclass
class Compiled:
    """A compiled program, its compile time and its temporary memory."""

    run: Callable[..., Any]
    compile_s: float
    temp_bytes: int | None


def temp_bytes(compiled: Any) -> int | None:
    """``memory_analysis().temp_size_in_bytes`` of a compiled program, where the backend has it."""
    try:
        analysis = compiled.memory_analysis()
    except (NotImplementedError, AttributeError, RuntimeError):
        return None
    return None if analysis is None else int(analysis.temp_size_in_bytes)


def compile_timed(fn: Callable[..., Any], *args: Any) -> Compiled:
    """Traces, lowers and compiles ``fn`` for ``args``: the executable, compile time, temp bytes."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    return Compiled(compiled, compile_s, temp_bytes(compiled))


def seconds(run: Callable[[], Any]) -> float:
    """Wall time of one call of ``run``, ended by ``jax.block_until_ready`` on its result."""
    start = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - start


def warm_up(runs: Iterable[Callable[[], Any]], calls: int) -> None:
    """``calls`` untimed rounds of every function."""
    runs = list(runs)
    for _ in range(calls):
        for run in runs:
            seconds(run)


def rounds(
    runs: Sequence[Callable[[], Any]], repeats: int, *, untimed_first: bool = False
) -> list[list[float]]:
    """Seconds per call of every function, each of ``repeats`` rounds calling each once in turn.

    With ``untimed_first``, every timed call follows an untimed one of the same function, so that
    its inputs are in cache whatever the function before it read.
    """
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, run_times in zip(runs, times, strict=True):
            if untimed_first:
                seconds(run)
            run_times.append(seconds(run))
    return times


def interleaved(
    runs: dict[str, Callable[[], Any]], *, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per call of every run, each round calling every run once in turn."""
    warm_up(runs.values(), warmup)
    return dict(zip(runs, rounds(list(runs.values()), repeats), strict=True))


def timing_row(
    case: str, impl: str, source: str, seconds: list[float], **extra: Any
) -> dict[str, Any]:
    """One implementation's row of a host-comparison suite: medians, minimum, every time."""
    return {
        "case": case,
        "impl": impl,
        "source": source,
        "median_ms": median_ms(seconds),
        "min_ms": min_ms(seconds),
        "times_ms": [1e3 * s for s in seconds],
        "compile_s": None,
        "temp_bytes": None,
        **extra,
    }


def median_ms(times: Sequence[float]) -> float:
    return 1e3 * statistics.median(times)


def min_ms(times: Sequence[float]) -> float:
    return 1e3 * min(times)


# ----------------------------------------------------------------------------------------------
# The machine.


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def note_load_average(machine: dict[str, Any], when: str, digits: int | None = None) -> None:
    """Sets ``machine["load_average_at_<when>"]`` where the system reports a load average."""
    if hasattr(os, "getloadavg"):
        load = list(os.getloadavg())
        machine[f"load_average_at_{when}"] = (
            load if digits is None else [round(x, digits) for x in load]
        )


def machine_description(
    versions: Mapping[str, str | None] | None = None, *, load_digits: int | None = None
) -> dict[str, Any]:
    """What the numbers are measured on: date, platform, CPU, backend and device, versions
    (jax's, then those of ``versions``), and the load average at the start."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        **(versions or {}),
    }
    note_load_average(info, "start", load_digits)
    return info


def machine_line(machine: dict[str, Any]) -> str:
    """One line for the log: CPU, backend, device, jax."""
    return f"# {machine['cpu']} | {machine['backend']} {machine['device']} | jax {machine['jax']}"


# ----------------------------------------------------------------------------------------------
# Reports.


def fmt(x: Any, spec: str) -> str:
    return NONE if x is None else format(x, spec)


def megabytes(n: int | None, unit: float = 1e6) -> str:
    return NONE if n is None else f"{n / unit:.1f}"


def versions_text(machine: dict[str, Any], names: Sequence[str]) -> str:
    """``"jax 0.1, optax 0.2, Python 3.11"`` for ``names`` ``("jax", "optax")``."""
    return ", ".join(
        [*(f"{name} {machine[name]}" for name in names), f"Python {machine['python']}"]
    )


def load_line(machine: dict[str, Any]) -> str:
    return (
        f"- load average at start / end: {machine.get('load_average_at_start')} / "
        f"{machine.get('load_average_at_end')}"
    )


def mode_line(result: dict[str, Any]) -> str:
    return (
        f"- mode: {'quick' if result['quick'] else 'full'}; median of {result['repeats']} rounds "
        f"after {result['warmup']} warm-up calls"
    )


def header_lines(
    title: str, result: dict[str, Any], versions: Sequence[str], *, mode_note: str = ""
) -> list[str]:
    """The title, date, machine, versions, mode (rounds and warm-up) and load average lines."""
    machine = result["machine"]
    lines = [
        f"# {title}",
        "",
        f"- date: {machine['date']}",
        f"- machine: {machine['cpu']} ({machine['cpu_count']} CPUs), backend "
        f"`{machine['backend']}`, device `{machine['device']}`",
        f"- {versions_text(machine, versions)}",
        mode_line(result) + mode_note,
    ]
    if machine.get("load_average_at_start") is not None:
        lines.append(load_line(machine))
    return lines


def target(name: str, bound: float, achieved: float) -> dict[str, Any]:
    """A target row: met when ``achieved <= bound``."""
    return {"target": name, "bound": bound, "achieved": achieved, "met": achieved <= bound}


def targets_table(targets: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| target | bound | achieved | met |", "| --- | --- | --- | --- |"]
    for t in targets:
        met = "yes" if t["met"] else "**no**"
        lines.append(f"| {t['target']} | ≤ {t['bound']:g} | {t['achieved']:.3f} | {met} |")
    return lines


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    for t in targets:
        print(f"target {t['target']}: {t['achieved']:.3f} (≤ {t['bound']:g}) met={t['met']}")


def write_json(path: Path, data: Any, *, indent: int = 1) -> None:
    path.write_text(json.dumps(data, indent=indent) + "\n")


def write_results(
    out: Path, stem: str, result: dict[str, Any], markdown: str, *, indent: int = 1
) -> None:
    """Writes ``<stem>.json`` and ``<stem>.md`` under ``out``."""
    write_json(out / f"{stem}.json", result, indent=indent)
    (out / f"{stem}.md").write_text(markdown)
