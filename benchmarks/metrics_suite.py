"""Benchmark of the evaluation metrics: per-image counts and scores against one read of the labels.

    python -m benchmarks.metrics_suite --out benchmarks/results        # [16, 512, 512], 21 classes
    python -m benchmarks.metrics_suite --quick --out /tmp/metrics      # tiny shapes: a smoke test

Each implementation is compiled with ``jax.jit(...).lower(...).compile()`` and timed as the
median of ``--repeats`` rounds after warm-up calls; in every round each implementation runs in
turn (a shared machine's load hits all of them alike), timed on its second of two consecutive
calls so that its inputs are in cache as the floor's are, each call ended by
``block_until_ready``. The floor is one read of the labels (an int32 sum over them); for float
scores, one read of the scores as well. Writes ``results_metrics_<backend>.md`` and ``.json``.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxseg_losses as jsl
from benchmarks import _harness

IGNORE_INDEX = 255
IGNORED_FRACTION = 0.05
AGREEMENT = 0.7  # fraction of pixels whose prediction is right


@dataclasses.dataclass(frozen=True)
class Case:
    shape: tuple[int, ...]  # [B, *spatial]
    num_classes: int


FULL = Case((16, 512, 512), 21)
QUICK = Case((2, 32, 32), 5)


def make_data(case: Case, seed: int = 0) -> dict[str, jax.Array]:
    """Labels with 5% ignored pixels, predictions right on 70% of the pixels, logits, decisions."""
    k = jax.random.split(jax.random.key(seed), 5)
    c = case.num_classes
    labels = jax.random.randint(k[0], case.shape, 0, c, jnp.int32)
    wrong = jax.random.randint(k[1], case.shape, 0, c, jnp.int32)
    predictions = jnp.where(jax.random.uniform(k[2], case.shape) < AGREEMENT, labels, wrong)
    labels = jnp.where(
        jax.random.uniform(k[3], case.shape) < IGNORED_FRACTION, IGNORE_INDEX, labels
    )
    logits = jax.random.normal(k[4], (*case.shape, c), jnp.float32)
    decisions = logits > 1.0
    targets = jax.nn.one_hot(jnp.where(labels == IGNORE_INDEX, 0, labels), c, dtype=jnp.bool_)
    return jax.block_until_ready(
        {
            "labels": labels,
            "predictions": predictions,
            "logits": logits,
            "decisions": decisions,
            "targets": targets,
        }
    )


def implementations(num_classes: int) -> list[tuple[str, str, Callable[..., Any], tuple[str, ...]]]:
    """``(name, floor it is compared with, function, input names)``."""
    options = {"num_classes": num_classes, "ignore_index": IGNORE_INDEX}

    def counts_and_scores(predictions: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
        counts = jsl.metrics.overlap_counts(predictions, labels, **options)
        return {
            "iou": jsl.metrics.iou(counts),
            "dice": jsl.metrics.dice(counts, ignore_empty=True),
            "case_mean_dice": jsl.metrics.dice(counts, ignore_empty=True, reduction="mean"),
            "pooled_miou": jsl.metrics.iou(counts.sum(axis=0), reduction="mean"),
        }

    def scores_of_logits(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
        counts = jsl.metrics.overlap_counts(logits, labels, ignore_index=IGNORE_INDEX)
        return {"dice": jsl.metrics.dice(counts, ignore_empty=True, reduction="mean")}

    def multi_label(decisions: jax.Array, targets: jax.Array) -> jax.Array:
        counts = jsl.metrics.overlap_counts(decisions, targets)
        return jsl.metrics.dice(counts, reduction="mean_batch")

    return [
        ("read labels", "labels", lambda y: jnp.sum(y, dtype=jnp.int32), ("labels",)),
        ("read logits", "logits", lambda x: jnp.sum(x), ("logits",)),
        (
            "overlap_counts (class indices)",
            "labels",
            lambda p, y: jsl.metrics.overlap_counts(p, y, **options),
            ("predictions", "labels"),
        ),
        (
            "overlap_counts + IoU, Dice per image, per-case and pooled means",
            "labels",
            counts_and_scores,
            ("predictions", "labels"),
        ),
        (
            "confusion_matrix (pooled over the batch)",
            "labels",
            lambda p, y: jsl.metrics.confusion_matrix(p, y, num_classes, ignore_index=IGNORE_INDEX),
            ("predictions", "labels"),
        ),
        (
            "overlap_counts of float scores (arg-max) + per-case Dice",
            "logits",
            scores_of_logits,
            ("logits", "labels"),
        ),
        (
            "overlap_counts of boolean multi-label decisions + Dice per class",
            "logits",
            multi_label,
            ("decisions", "targets"),
        ),
    ]


def run(case: Case, *, repeats: int, warmup: int, log: Callable[..., None] = print) -> list[dict]:
    """Compiles and times every implementation; one row each."""
    data = make_data(case)
    runs = []
    rows = []
    for name, floor, fn, inputs in implementations(case.num_classes):
        args = [data[i] for i in inputs]
        program = _harness.compile_timed(fn, *args)
        runs.append(functools.partial(program.run, *args))
        _harness.warm_up(runs[-1:], warmup)
        rows.append(
            {
                "impl": name,
                "floor": f"read {floor}",
                "inputs": {i: [list(data[i].shape), str(data[i].dtype)] for i in inputs},
                "input_bytes": int(sum(data[i].nbytes for i in inputs)),
                "compile_s": program.compile_s,
                "temp_bytes": program.temp_bytes,
            }
        )
    # An untimed call before each timed one: the inputs are in cache for every implementation
    # alike (the 350 MB of logits read by one row would otherwise evict the next row's).
    times = _harness.rounds(runs, repeats, untimed_first=True)
    for row, t in zip(rows, times, strict=True):
        row["ms"] = _harness.median_ms(t)
        row["ms_min"] = _harness.min_ms(t)
        row["repeats"] = repeats
    floors = {row["impl"]: row["ms"] for row in rows if row["impl"].startswith("read ")}
    for row in rows:
        row["ratio_to_floor"] = row["ms"] / floors[row["floor"]]
        row["ratio_to_labels_read"] = row["ms"] / floors["read labels"]
        log(
            f"  {row['impl']:<66} {row['ms']:9.2f} ms  x {row['floor']} "
            f"{row['ratio_to_floor']:6.2f}  x read labels {row['ratio_to_labels_read']:6.2f}",
            flush=True,
        )
    return rows


def check_counts(case: Case) -> dict[str, Any]:
    """What the benchmark computes is right: every counted pixel lands once per class."""
    data = make_data(case)
    counts = jax.jit(
        lambda p, y: jsl.metrics.overlap_counts(
            p, y, num_classes=case.num_classes, ignore_index=IGNORE_INDEX
        )
    )(data["predictions"], data["labels"])
    valid = np.asarray(data["labels"] != IGNORE_INDEX).reshape(case.shape[0], -1).sum(1)
    totals = sum(np.asarray(getattr(counts, f), np.int64) for f in ("tp", "fp", "fn", "tn"))
    return {
        "pixels_counted": int(valid.sum()),
        "every_class_sums_to_the_counted_pixels": bool(np.all(totals == valid[:, None])),
    }


def markdown(result: dict[str, Any]) -> str:
    case = result["case"]
    lines = _harness.header_lines("Metrics benchmark", result, ("jax",))
    lines += [
        f"- batch: labels `{case['shape']}` int32, {case['num_classes']} classes, "
        f"{IGNORED_FRACTION:.0%} of the pixels ignored (255), predictions right on "
        f"{AGREEMENT:.0%}; logits `[*shape, C]` float32",
        f"- counts checked: {result['check']}",
        "",
        "| implementation | ms | × its floor | × one read of the labels | compile s | temp MB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        temp = _harness.megabytes(r["temp_bytes"])
        lines.append(
            f"| {r['impl']} | {r['ms']:.2f} | {r['ratio_to_floor']:.2f} ({r['floor']}) | "
            f"{r['ratio_to_labels_read']:.2f} | {r['compile_s']:.2f} | {temp} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = _harness.ArgumentParser(__doc__.split("\n")[0], repeats=10, warmup=2)
    args = parser.parse(argv)
    case, repeats = (QUICK if args.quick else FULL), args.repeats
    info = _harness.machine_description()
    print(f"metrics benchmark: labels {list(case.shape)}, {case.num_classes} classes", flush=True)
    rows = run(case, repeats=repeats, warmup=args.warmup)
    _harness.note_load_average(info, "end")
    result = {
        "machine": info,
        "quick": args.quick,
        "repeats": repeats,
        "warmup": args.warmup,
        "case": {"shape": list(case.shape), "num_classes": case.num_classes},
        "check": check_counts(case),
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"results_metrics_{info['backend']}"
    _harness.write_results(out, stem, result, markdown(result), indent=2)
    print(f"wrote {out / stem}.md and .json")
    return result


if __name__ == "__main__":
    main()
