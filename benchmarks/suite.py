"""The benchmark matrix: cases, timing, memory, and the markdown/JSON/plot reports.

For every case (a logits shape, an activation and a dtype) and every implementation of every loss
family, the loss ``f(logits, labels)`` and ``jax.value_and_grad(f)`` are compiled with
``jax.jit(...).lower(...).compile()``, which gives the compile time and the compiled program's
temporary memory (``memory_analysis().temp_size_in_bytes``). Timings are medians over rounds in
which every implementation of the case runs once in turn, so a shared, noisy machine slows all of
them alike and the ratios stay meaningful; each call ends with ``block_until_ready``.
"""

import argparse
import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _harness, baselines


@dataclasses.dataclass(frozen=True)
class Case:
    """One input configuration."""

    name: str
    shape: tuple[int, ...]
    activation: str
    dtype: str

    @property
    def label(self) -> str:
        return f"{self.name} {list(self.shape)} {self.activation} {self.dtype}"


# (name, logits shape, activation): the matrix, and a tiny one for smoke tests.
FULL_SHAPES = (
    ("voc", (8, 256, 256, 21), "softmax"),
    ("binary", (16, 256, 256, 1), "sigmoid"),
    ("ade", (2, 128, 128, 150), "softmax"),
    ("volume", (2, 96, 96, 96, 14), "softmax"),
)
QUICK_SHAPES = (
    ("voc", (2, 16, 16, 5), "softmax"),
    ("binary", (2, 16, 16, 1), "sigmoid"),
    ("ade", (1, 8, 8, 12), "softmax"),
    ("volume", (1, 4, 8, 8, 3), "softmax"),
)
DTYPES = ("float32", "bfloat16")
REFERENCE_CASE = "voc"
IGNORED_FRACTION = 0.05


def make_data(case: Case, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """Logits ~ 2·N(0, 1) in the case's dtype; int32 labels with 5% set to the ignore index."""
    k_logits, k_labels, k_ignore = jax.random.split(jax.random.key(seed), 3)
    logits = (2.0 * jax.random.normal(k_logits, case.shape, jnp.float32)).astype(case.dtype)
    num_labels = max(case.shape[-1], 2)
    labels = jax.random.randint(k_labels, case.shape[:-1], 0, num_labels, jnp.int32)
    ignored = jax.random.uniform(k_ignore, case.shape[:-1]) < IGNORED_FRACTION
    labels = jnp.where(ignored, baselines.IGNORE_INDEX, labels)
    return jax.block_until_ready(logits), jax.block_until_ready(labels)


def run_case(
    case: Case,
    impls: Sequence[baselines.Impl],
    *,
    repeats: int,
    warmup: int,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Compiles and times every implementation on one case; returns one row per implementation."""
    logits, labels = make_data(case)
    args = (logits, labels)
    rows = []
    runs = []  # the fwd and the fwd+bwd program of every implementation, in turn
    for impl in impls:
        fwd = _harness.compile_timed(impl.fn, *args)
        fwd_bwd = _harness.compile_timed(jax.value_and_grad(impl.fn), *args)
        value = float(fwd.run(*args))
        grad = fwd_bwd.run(*args)[1]
        grad_finite = bool(jnp.all(jnp.isfinite(grad.astype(jnp.float32))))
        programs = [functools.partial(fwd.run, *args), functools.partial(fwd_bwd.run, *args)]
        _harness.warm_up(programs, warmup)
        runs += programs
        rows.append(
            {
                "case": case.name,
                "shape": list(case.shape),
                "activation": case.activation,
                "dtype": case.dtype,
                "family": impl.family,
                "source": impl.source,
                "impl": impl.name,
                "value": value,
                "grad_finite": grad_finite,
                "compile_fwd_s": fwd.compile_s,
                "compile_fwd_bwd_s": fwd_bwd.compile_s,
                "temp_fwd_bytes": fwd.temp_bytes,
                "temp_fwd_bwd_bytes": fwd_bwd.temp_bytes,
                "logits_bytes": int(logits.nbytes),
            }
        )
    # Rounds: every implementation once per round, so load changes hit all of them alike.
    times = _harness.rounds(runs, repeats)
    for row, f_times, fb_times in zip(rows, times[0::2], times[1::2], strict=True):
        row["fwd_ms"] = _harness.median_ms(f_times)
        row["fwd_bwd_ms"] = _harness.median_ms(fb_times)
        row["fwd_bwd_ms_min"] = _harness.min_ms(fb_times)
        row["repeats"] = repeats
        row["achieved_gbps"] = row["logits_bytes"] / (row["fwd_bwd_ms"] * 1e-3) / 1e9
    _add_ratios(rows)
    rows.sort(key=_row_order)
    for row in rows:
        log(
            f"  {row['impl']:<45} fwd {row['fwd_ms']:9.3f} ms  fwd+bwd {row['fwd_bwd_ms']:9.3f} ms"
            f"  x floor {_harness.fmt(row['ratio_floor'], '.2f')}"
            f"  x optax {_harness.fmt(row['ratio_optax'], '.2f')}",
            flush=True,
        )
    return rows


_SOURCES = ("floor", "jaxseg_losses", "optax", "plain_jnp")


def _row_order(row: dict[str, Any]) -> tuple[int, int, str]:
    """Tables group by family (in FAMILIES order), then library, optax, plain jnp."""
    return (baselines.FAMILIES.index(row["family"]), _SOURCES.index(row["source"]), row["impl"])


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """Fwd+bwd time over the floor, the family's optax reference and its plain-jnp version."""
    by_key = {(r["family"], r["source"]): r for r in rows}
    floor = by_key.get(("floor", "floor"))
    for row in rows:
        row["ratio_floor"] = row["fwd_bwd_ms"] / floor["fwd_bwd_ms"] if floor else None
        ref_family = baselines.OPTAX_REFERENCE.get(row["family"])
        ref = by_key.get((ref_family, "optax")) if ref_family else None
        plain = by_key.get((row["family"], "plain_jnp"))
        row["optax_reference"] = ref["impl"] if ref else None
        row["ratio_optax"] = row["fwd_bwd_ms"] / ref["fwd_bwd_ms"] if ref else None
        row["ratio_plain_jnp"] = row["fwd_bwd_ms"] / plain["fwd_bwd_ms"] if plain else None


def machine_description() -> dict[str, Any]:
    """What the numbers were measured on, with optax's version."""
    try:
        import optax

        optax_version = optax.__version__
    except ImportError:
        optax_version = None
    return _harness.machine_description({"optax": optax_version})


# ----------------------------------------------------------------------------------------------
# Reports.


def target_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The speed and memory targets, checked on the reference case (float32)."""
    ref = {r["impl"]: r for r in rows if r["case"] == REFERENCE_CASE and r["dtype"] == "float32"}
    out: list[dict[str, Any]] = []

    def target(name: str, bound: float, achieved: float | None) -> None:
        if achieved is not None:
            out.append(_harness.target(name, bound, achieved))

    def time_of(impl: str) -> float | None:
        return ref[impl]["fwd_bwd_ms"] if impl in ref else None

    def ratio(a: str, b: str) -> float | None:
        ta, tb = time_of(a), time_of(b)
        return None if ta is None or tb is None else ta / tb

    floor = "floor: logsumexp fwd+bwd"
    for combined in ('jsl.combine("ce+dice")', "jsl.dice_ce_loss"):
        target(f"{combined} / jsl.dice_loss", 1.05, ratio(combined, "jsl.dice_loss"))
        target(f"{combined} / floor", 1.5, ratio(combined, floor))
    for region in ("jsl.dice_loss", "jsl.iou_loss", "jsl.tversky_loss"):
        target(f"{region} / floor", 1.35, ratio(region, floor))
    target("jsl.cross_entropy_loss / floor", 1.15, ratio("jsl.cross_entropy_loss", floor))
    target(
        "jsl.cross_entropy_loss / optax CE",
        1.0,
        ratio("jsl.cross_entropy_loss", "optax CE (integer labels)"),
    )
    for impl, row in ref.items():
        if row["source"] == "jaxseg_losses" and row["temp_fwd_bwd_bytes"] is not None:
            target(
                f"{impl}: fwd+bwd temp memory / logits bytes",
                1.0,
                row["temp_fwd_bwd_bytes"] / row["logits_bytes"],
            )
    return out


def markdown_report(result: dict[str, Any], peak_gbps: float | None) -> str:
    """The results as markdown: machine, target check, one table per case."""
    lines = _harness.header_lines("Benchmark results", result, ("jax", "optax"))
    if peak_gbps:
        lines.append(f"- peak memory bandwidth assumed: {peak_gbps:g} GB/s")
    lines += ["", "## Targets (reference case, fwd+bwd)", ""]
    targets = result["targets"]
    if targets:
        lines += _harness.targets_table(targets)
    else:
        lines.append("(the reference case was not run)")
    header = (
        "| loss | implementation | fwd ms | fwd+bwd ms | × floor | × optax ref | × plain jnp | "
        "compile s | temp MB (fwd+bwd) | temp / logits | GB/s |"
    )
    sep = "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    if peak_gbps:
        header += " % of peak |"
        sep += " --- |"
    cases: dict[str, list[dict[str, Any]]] = {}
    for r in result["rows"]:
        cases.setdefault(f"{r['case']} {r['shape']} {r['activation']} {r['dtype']}", []).append(r)
    for title, rows in cases.items():
        logits_mb = rows[0]["logits_bytes"] / 1e6
        lines += ["", f"## {title} (logits {logits_mb:.1f} MB)", "", header, sep]
        for r in rows:
            temp = r["temp_fwd_bwd_bytes"]
            cells = [
                r["family"],
                f"{r['impl']}" if r["source"] != "jaxseg_losses" else f"**{r['impl']}**",
                f"{r['fwd_ms']:.2f}",
                f"{r['fwd_bwd_ms']:.2f}",
                _harness.fmt(r.get("ratio_floor"), ".2f"),
                _harness.fmt(r["ratio_optax"], ".2f"),
                _harness.fmt(r["ratio_plain_jnp"], ".2f"),
                f"{r['compile_fwd_bwd_s']:.2f}",
                _harness.megabytes(temp),
                _harness.fmt(None if temp is None else temp / r["logits_bytes"], ".2f"),
                f"{r['achieved_gbps']:.1f}",
            ]
            if peak_gbps:
                cells.append(f"{100 * r['achieved_gbps'] / peak_gbps:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "× floor: fwd+bwd time over the floor (`jax.nn.logsumexp(x, -1).sum()`, the cheapest "
        "fwd+bwd that exponentiates every logit) in the same run. × optax ref: over the optax "
        "function named in the JSON's `optax_reference` (Dice for IoU, Dice and Tversky, CE for "
        "CE and CE + Dice, sigmoid focal for focal). GB/s: logits bytes / fwd+bwd time (one read "
        "of the logits; the real traffic is larger).",
        "",
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> bool:
    """Fwd+bwd time against logits elements (log-log), and ratios to optax at the reference."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = result["rows"]
    fig, (ax_scale, ax_ratio) = plt.subplots(1, 2, figsize=(13, 5))
    markers = {"voc": "o", "binary": "s", "ade": "^", "volume": "D"}
    for family in baselines.FAMILIES:
        # One implementation per family and case: the first (the plain calls, not the
        # combinator), so each line joins like with like.
        firsts: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["family"] == family and r["source"] == "jaxseg_losses" and r["dtype"] == "float32":
                firsts.setdefault(r["case"], r)
        mine = list(firsts.values())
        if not mine:
            continue
        mine.sort(key=lambda r: int(np.prod(r["shape"])))
        sizes = [int(np.prod(r["shape"])) for r in mine]
        times = [r["fwd_bwd_ms"] for r in mine]
        (line,) = ax_scale.plot(sizes, times, "-", alpha=0.5, label=family)
        for r, n, t in zip(mine, sizes, times, strict=True):
            ax_scale.plot(n, t, markers.get(r["case"], "o"), color=line.get_color())
    all_sizes = [int(np.prod(r["shape"])) for r in rows]
    if all_sizes:
        ref_rows = [
            r
            for r in rows
            if r["source"] == "optax" and r["family"] == "ce" and r["dtype"] == "float32"
        ]
        if ref_rows:
            r0 = max(ref_rows, key=lambda r: int(np.prod(r["shape"])))
            n0, t0 = int(np.prod(r0["shape"])), r0["fwd_bwd_ms"]
            xs = np.array([min(all_sizes), max(all_sizes)], dtype=float)
            ax_scale.plot(xs, t0 * xs / n0, "k--", lw=1, label="∝ elements (through optax CE)")
    ax_scale.set_xscale("log")
    ax_scale.set_yscale("log")
    ax_scale.set_xlabel("logits elements B·pixels·C  (o voc, □ binary, △ ade, ◇ volume)")
    ax_scale.set_ylabel("jaxseg_losses fwd+bwd time, float32 (ms)")
    ax_scale.set_title("Cost against size")
    ax_scale.legend(fontsize=8)

    ref_rows = [r for r in rows if r["case"] == REFERENCE_CASE and r["ratio_optax"] is not None]
    labels, f32, bf16 = [], [], []
    for r in ref_rows:
        if r["dtype"] != "float32":
            continue
        other = next(
            (
                o
                for o in ref_rows
                if o["dtype"] == "bfloat16"
                and o["impl"] == r["impl"]
                and o["family"] == r["family"]
            ),
            None,
        )
        labels.append(f"{r['family']}: {r['impl']}")
        f32.append(r["ratio_optax"])
        bf16.append(other["ratio_optax"] if other else np.nan)
    ys = np.arange(len(labels))
    ax_ratio.barh(ys - 0.2, f32, height=0.4, label="float32")
    ax_ratio.barh(ys + 0.2, bf16, height=0.4, label="bfloat16")
    ax_ratio.axvline(1.0, color="k", lw=1)
    ax_ratio.set_yticks(ys, labels, fontsize=7)
    ax_ratio.invert_yaxis()
    ax_ratio.set_xscale("log")
    ax_ratio.set_xlabel("fwd+bwd time / optax reference (same dtype, same run)")
    ax_ratio.set_title(f"Reference case {REFERENCE_CASE}")
    ax_ratio.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------------------------
# Entry point.


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options; ``repeats`` and ``warmup`` filled in (10 and 2, or 2 and 1 with --quick)."""
    parser = _harness.ArgumentParser(__doc__.splitlines()[0], repeats=10, warmup=2, quick_warmup=1)
    parser.add_argument(
        "--peak-gbps",
        type=float,
        default=None,
        help="device memory bandwidth in GB/s: adds achieved GB/s as a percentage of it",
    )
    parser.add_argument(
        "--cases", default=None, help="comma-separated case names (voc,binary,ade,volume)"
    )
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="float32,bfloat16")
    parser.add_argument(
        "--families", default=",".join(baselines.FAMILIES), help="loss families to run"
    )
    parser.add_argument("--tag", default="", help="suffix of the output file names")
    return parser.parse(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the matrix and writes ``results{tag}.md``, ``.json`` and ``.png`` under ``--out``."""
    args = parse_args(argv)
    repeats, warmup = args.repeats, args.warmup
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    if args.cases:
        wanted = args.cases.split(",")
        unknown = set(wanted) - {name for name, _, _ in shapes}
        if unknown:
            raise SystemExit(f"unknown case(s) {sorted(unknown)}")
        shapes = tuple(s for s in shapes if s[0] in wanted)
    dtypes = tuple(args.dtypes.split(","))
    families = tuple(args.families.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    machine = machine_description()
    print(_harness.machine_line(machine))
    rows: list[dict[str, Any]] = []
    for name, shape, activation in shapes:
        every_impl = baselines.implementations(activation, families)
        for dtype in dtypes:
            # The newer families are measured at the reference shape in float32 only.
            reference = name == REFERENCE_CASE and dtype == DTYPES[0]
            impls = [
                impl
                for impl in every_impl
                if reference or impl.family not in baselines.REFERENCE_ONLY
            ]
            case = Case(name, shape, activation, dtype)
            print(f"{case.label}: {len(impls)} implementations", flush=True)
            rows += run_case(case, impls, repeats=repeats, warmup=warmup)
            # Partial results after every case, so a run cut short still leaves its numbers.
            partial = {"machine": machine, "quick": args.quick, "partial": True, "rows": rows}
            _harness.write_json(out / f"results{args.tag}.json", partial)
    _harness.note_load_average(machine, "end")
    result: dict[str, Any] = {
        "machine": machine,
        "quick": args.quick,
        "repeats": repeats,
        "warmup": warmup,
        "peak_gbps": args.peak_gbps,
        "rows": rows,
    }
    result["targets"] = target_summary(rows)
    stem = f"results{args.tag}"
    _harness.write_results(out, stem, result, markdown_report(result, args.peak_gbps))
    result["plot"] = str(out / f"{stem}.png") if plot(result, out / f"{stem}.png") else None
    _harness.print_targets(result["targets"])
    print(f"wrote {out / stem}.{{md,json,png}}")
    return result
