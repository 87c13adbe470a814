"""Instance-metric benchmarks: connected components and lesion-wise scores against the host.

``python -m benchmarks.instance_suite [--quick] [--out DIR] [--repeats N] [--tag SUFFIX]`` writes
``results_instances{tag}.md`` and ``.json`` under ``--out`` (default ``benchmarks/results``, tag
``_<backend>``). Every case is timed against a host (NumPy/scipy) implementation in the same run,
so that the ratios hold even on a busy machine:

* ``components``: ``jsl.metrics.connected_components`` against ``scipy.ndimage.label`` called on
  each image of the batch in turn, with the same structure
  (``generate_binary_structure(D, connectivity)``); the labels must be identical. Cases: random
  masks ``[8, 512, 512]`` of densities 0.3, 0.5 and 0.7 (connectivity 1; 0.5 also with 2),
  smoothed noise ``[2, 128, 128, 128]`` thresholded at 30% foreground (connectivity 1 and 3),
  and the serpentine, one path filling a 512 x 512 image (every other row, the rows joined at
  alternating ends), and its transpose, batch 8. Every row also records the hooking rounds and
  pointer-jumping steps that ``label_components`` reports for the batch.
* ``lesions``: the BraTS 2023 lesion-wise Dice and HD95
  (``jaxseg_losses.metrics.lesions.lesion_wise_scores``) of ``[2, 128, 128, 128]`` volumes with
  20 ellipsoidal lesions each (the prediction: lesions moved and resized, a few missed, a few
  false ones) against the host implementation of the BraTS algorithm in
  ``tests/references/lesions.py``, image by image; both values and their largest difference.

Each round runs every implementation of a case once, in turn; the tables report medians over the
rounds (after warm-up calls), the JAX programs' compile time and temporary memory
(``memory_analysis().temp_size_in_bytes``), and the ratio to the host implementation in the same
run. The host lesion implementation scores one lesion after the other over the whole volume and
takes tens of seconds a call at the full size, so the lesion case runs at most
``LESION_REPEATS`` rounds.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy
import scipy.ndimage as ndi

import jaxseg_losses as jsl
from benchmarks import _harness
from jaxseg_losses.geometry.components import label_components
from jaxseg_losses.metrics.lesions import lesion_wise_scores
from tests.references import lesions as lesions_reference

DESCRIPTION = "Instance-metric benchmarks: connected components and lesion-wise scores."
FULL = {
    "random": (8, 512, 512),
    "volume": (2, 128, 128, 128),
    "serpentine": (8, 512),
    "lesions": (2, 128, 128, 128),
    "lesion_count": 20,
    "max_lesions": 32,
}
QUICK = {
    "random": (2, 32, 32),
    "volume": (1, 12, 12, 12),
    "serpentine": (2, 32),
    "lesions": (1, 48, 48, 48),
    "lesion_count": 4,
    "max_lesions": 8,
}
DENSITIES = (0.3, 0.5, 0.7)
VOLUME_FOREGROUND = 0.3
VOLUME_SIGMA = 2.0
LESION_REPEATS = 3  # the most rounds of the lesion case (see the module docstring)
# The BraTS 2023 GLI settings, the defaults of both implementations.
LESION_OPTIONS = {"dilation_iterations": 3, "volume_threshold": 50.0, "missing_hd": 374.0}

# ----------------------------------------------------------------------------------------------
# Data.


def random_masks(shape: tuple[int, ...], density: float, seed: int = 0) -> np.ndarray:
    """Independent pixels, each foreground with probability ``density``."""
    return np.random.default_rng(seed).random(shape) < density


def smoothed_noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Gaussian noise smoothed over the spatial axes, its top ``VOLUME_FOREGROUND`` kept: blobs
    of every size, as a thresholded probability map has them."""
    noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    smooth = ndi.gaussian_filter(noise, sigma=(0.0,) + (VOLUME_SIGMA,) * (len(shape) - 1))
    return smooth > np.quantile(smooth, 1.0 - VOLUME_FOREGROUND)


def serpentine(batch: int, size: int, *, transpose: bool = False) -> np.ndarray:
    """One path filling a ``size x size`` image: the even rows, each joined to the next at the
    right end, then the left, and so on (or the transpose), ``batch`` copies.

    The worst case for label propagation (the path is half the image long) and for pointer
    jumping along its rows.
    """
    image = np.zeros((size, size), bool)
    image[0::2] = True
    for turn, row in enumerate(range(1, size - 1, 2)):
        image[row, size - 1 if turn % 2 == 0 else 0] = True
    if transpose:
        image = image.T
    return np.ascontiguousarray(np.broadcast_to(image, (batch, size, size)))


def component_cases(sizes: dict[str, Any]) -> list[tuple[str, np.ndarray, int]]:
    """``(name, masks, connectivity)`` of every connected-components case."""
    random, volume = sizes["random"], sizes["volume"]
    batch, side = sizes["serpentine"]
    cases = [(f"random {d:g}", random_masks(random, d), 1) for d in DENSITIES]
    cases.append(("random 0.5", random_masks(random, 0.5), 2))
    noise = smoothed_noise(volume)
    cases += [("smoothed noise", noise, 1), ("smoothed noise", noise, 3)]
    cases.append(("serpentine rows", serpentine(batch, side), 1))
    cases.append(("serpentine columns", serpentine(batch, side, transpose=True), 1))
    return cases


def _paint(volume: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> None:
    """Sets an ellipsoid of ``volume`` (only its bounding box is visited)."""
    lo = np.maximum(np.floor(centre - radii).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radii).astype(int) + 1, volume.shape)
    box = tuple(slice(a, z) for a, z in zip(lo, hi, strict=True))
    grid = np.ogrid[box]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0
    volume[box] |= inside


def _spread_centres(
    spatial: tuple[int, ...], count: int, gap: float, rng: np.random.Generator
) -> np.ndarray:
    """``count`` random centres at least ``gap`` apart and ``gap / 2`` from the border."""
    centres: list[np.ndarray] = []
    for _ in range(1000 * count):
        c = np.array([rng.uniform(gap / 2, n - gap / 2) for n in spatial])
        if all(np.linalg.norm(c - other) >= gap for other in centres):
            centres.append(c)
        if len(centres) == count:
            return np.array(centres)
    raise ValueError(f"cannot place {count} lesions {gap} voxels apart in {spatial}")


def lesion_volumes(
    shape: tuple[int, ...], lesions: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(predictions, labels)``, bool ``shape``: ``lesions`` ellipsoids per image, far enough
    apart that the BraTS dilation keeps them apart (some below its 50-voxel threshold); the
    prediction moves each by up to 2 voxels and resizes it by up to 25%, misses
    ``lesions // 6 + 1`` of them and adds as many false ones."""
    rng = np.random.default_rng(seed)
    spatial = shape[1:]
    scale = min(spatial) / 128
    largest = max(9.0 * scale, 4.0)
    labels = np.zeros(shape, bool)
    predictions = np.zeros(shape, bool)
    missed = false = lesions // 6 + 1
    for b in range(shape[0]):
        centres = _spread_centres(spatial, lesions + false, 2 * largest + 10, rng)
        for i, centre in enumerate(centres):
            radii = rng.uniform(max(2.0, 0.3 * largest), largest, len(spatial))
            if i < lesions:
                _paint(labels[b], centre, radii)
            if lesions - missed <= i < lesions:
                continue  # a missed lesion
            if i < lesions:
                centre = centre + rng.uniform(-2.0, 2.0, len(spatial))
                radii = radii * rng.uniform(0.75, 1.25, len(spatial))
            _paint(predictions[b], centre, radii)
    return predictions, labels


# ----------------------------------------------------------------------------------------------
# Timing.


def scipy_labels(masks: np.ndarray, connectivity: int) -> np.ndarray:
    """``scipy.ndimage.label`` of each image of the batch, written into one int32 array."""
    structure = ndi.generate_binary_structure(masks.ndim - 1, connectivity)
    out = np.empty(masks.shape, np.int32)
    for b in range(masks.shape[0]):
        ndi.label(masks[b], structure=structure, output=out[b])
    return out


class _Programs:
    """Compiled ``connected_components`` and ``label_components`` per (shape, connectivity): the
    cases of one shape and connectivity share them, and the first case counts the compile."""

    def __init__(self) -> None:
        self.compiled: dict[tuple[Any, ...], tuple[_harness.Compiled, _harness.Compiled]] = {}

    def get(self, masks: jax.Array, connectivity: int) -> tuple[Any, Any, bool]:
        key = (masks.shape, connectivity)
        first = key not in self.compiled
        if first:

            def labels(m: jax.Array) -> tuple[jax.Array, jax.Array]:
                return jsl.metrics.connected_components(m, connectivity=connectivity)

            def labelling(m: jax.Array) -> Any:
                return label_components(m, connectivity=connectivity)

            self.compiled[key] = (
                _harness.compile_timed(labels, masks),
                _harness.compile_timed(labelling, masks),
            )
        timed, counted = self.compiled[key]
        return timed, counted, first


def run_components_case(
    name: str,
    masks: np.ndarray,
    connectivity: int,
    programs: _Programs,
    *,
    repeats: int,
    warmup: int,
) -> list[dict[str, Any]]:
    case = f"components {name} {list(masks.shape)} connectivity {connectivity}"
    device_masks = jax.block_until_ready(jnp.asarray(masks))
    program, counter, first = programs.get(device_masks, connectivity)
    labels, counts = (np.asarray(x) for x in program.run(device_masks))
    labelling = counter.run(device_masks)
    rounds, jumps = int(labelling.rounds), int(labelling.jumps)
    expected = scipy_labels(masks, connectivity)
    identical = bool(np.array_equal(labels, expected)) and bool(
        np.array_equal(counts, expected.reshape(len(masks), -1).max(axis=1))
    )
    times = _harness.interleaved(
        {
            "jsl": lambda: program.run(device_masks),
            "scipy": lambda: scipy_labels(masks, connectivity),
        },
        repeats=repeats,
        warmup=warmup,
    )
    shared = {
        "rounds": rounds,
        "jumps": jumps,
        "components": int(counts.sum()),
        "foreground": float(masks.mean()),
    }
    mine = _harness.timing_row(
        case,
        "jsl.metrics.connected_components",
        "jaxseg_losses",
        times["jsl"],
        identical=identical,
        input_bytes=int(masks.size),
        **shared,
    )
    mine["compile_s"] = program.compile_s if first else None
    mine["temp_bytes"] = program.temp_bytes
    reference = _harness.timing_row(
        case, "scipy.ndimage.label, per image", "host", times["scipy"], **shared
    )
    mine["ratio"] = mine["median_ms"] / reference["median_ms"]
    reference["ratio"] = 1.0
    print(
        f"{case}: jsl {mine['median_ms']:.1f} ms, scipy {reference['median_ms']:.1f} ms, "
        f"ratio {mine['ratio']:.2f}, rounds {rounds}, jumps {jumps}, identical {identical}"
    )
    if not identical:
        print(f"WARNING {case}: the labels differ from scipy.ndimage.label's")
    return [mine, reference]


def host_lesion_scores(predictions: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The BraTS host reference of each image: ``dice``, ``hausdorff``, ``tp``, ``fp``, ``fn``,
    each ``[B]``."""
    scores = [
        lesions_reference.lesion_wise(p, g, percent=95.0, **LESION_OPTIONS)
        for p, g in zip(predictions, labels, strict=True)
    ]
    names = ("dice", "hausdorff", "tp", "fp", "fn")
    return {name: np.array([s[name] for s in scores], np.float64) for name in names}


def run_lesions(
    shape: tuple[int, ...], lesions: int, max_lesions: int, *, repeats: int, warmup: int
) -> list[dict[str, Any]]:
    case = f"lesion-wise Dice + HD95 {list(shape)}, {lesions} lesions"
    predictions, labels = lesion_volumes(shape, lesions)
    device = jax.block_until_ready(
        (jnp.asarray(predictions[..., None]), jnp.asarray(labels[..., None]))
    )

    def ours(p: jax.Array, g: jax.Array) -> Any:
        return lesion_wise_scores(
            p, g, max_lesions=max_lesions, include_background=True, **LESION_OPTIONS
        )

    program = _harness.compile_timed(ours, *device)
    scores = program.run(*device)
    mine_values = {
        name: np.asarray(getattr(scores, name), np.float64)[:, 0]
        for name in ("dice", "hausdorff", "tp", "fp", "fn")
    }
    host = host_lesion_scores(predictions, labels)
    times = _harness.interleaved(
        {
            "jsl": lambda: program.run(*device),
            "host": lambda: host_lesion_scores(predictions, labels),
        },
        repeats=repeats,
        warmup=warmup,
    )
    differences = {
        name: float(np.max(np.abs(mine_values[name] - host[name]))) for name in mine_values
    }
    mine = _harness.timing_row(
        case,
        "jaxseg_losses.metrics.lesions.lesion_wise_scores",
        "jaxseg_losses",
        times["jsl"],
        values={k: v.tolist() for k, v in mine_values.items()},
        max_abs_difference=differences,
        input_bytes=int(predictions.nbytes + labels.nbytes),
    )
    mine["compile_s"], mine["temp_bytes"] = program.compile_s, program.temp_bytes
    reference = _harness.timing_row(
        case,
        "BraTS 2023 algorithm (tests/references/lesions.py, host)",
        "host",
        times["host"],
        values={k: v.tolist() for k, v in host.items()},
    )
    mine["ratio"] = mine["median_ms"] / reference["median_ms"]
    reference["ratio"] = 1.0
    print(
        f"{case}: jsl {mine['median_ms']:.0f} ms, host {reference['median_ms']:.0f} ms; "
        f"Dice {mine_values['dice']} vs {host['dice']}, HD95 {mine_values['hausdorff']} vs "
        f"{host['hausdorff']}; max differences {differences}"
    )
    return [mine, reference]


# ----------------------------------------------------------------------------------------------
# Reports.


def machine_description() -> dict[str, Any]:
    """What the numbers were measured on, with scipy's and numpy's versions."""
    versions = {"scipy": scipy.__version__, "numpy": np.__version__}
    return _harness.machine_description(versions, load_digits=2)


def targets(rows: Sequence[dict[str, Any]], backend: str) -> list[dict[str, Any]]:
    """Connected components: within 5x of scipy's time on CPU, at least 10x faster than it
    (ratio <= 0.1) on an accelerator. The lesion case has no target."""
    bound = 5.0 if backend == "cpu" else 0.1
    return [
        _harness.target(f"{row['case']}: {row['impl']} / scipy.ndimage.label", bound, row["ratio"])
        for row in rows
        if row["source"] == "jaxseg_losses" and row["case"].startswith("components")
    ]


def _check(row: dict[str, Any]) -> str:
    if "identical" in row:
        return "labels identical to scipy" if row["identical"] else "**labels differ**"
    if "max_abs_difference" in row:
        d = row["max_abs_difference"]
        return f"max difference vs host: Dice {d['dice']:.1e}, HD95 {d['hausdorff']:.1e}"
    return ""


def _lesion_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rows:
        if "values" not in r:
            continue
        v = r["values"]
        dice = ", ".join(f"{x:.6f}" for x in v["dice"])
        hd = ", ".join(f"{x:.4f}" for x in v["hausdorff"])
        counts = ", ".join(
            f"{int(tp)}/{int(fp)}/{int(fn)}"
            for tp, fp, fn in zip(v["tp"], v["fp"], v["fn"], strict=True)
        )
        lines.append(f"| {r['impl']} | {dice} | {hd} | {counts} |")
    return lines


def markdown_report(result: dict[str, Any]) -> str:
    lines = _harness.header_lines(
        "Instance-metric benchmark results",
        result,
        ("jax", "scipy", "numpy"),
        mode_note=f"; the lesion case {result['lesion_repeats']} rounds after one untimed call",
    )
    lines += ["", "## Targets", "", *_harness.targets_table(result["targets"])]
    lines += [
        "",
        "## Measurements",
        "",
        "| case | implementation | median ms | min ms | × host | compile s | temp MB | rounds "
        "| jumps | check |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        compile_s = _harness.fmt(r["compile_s"], ".2f")
        temp = _harness.megabytes(r["temp_bytes"], unit=2**20)
        name = f"**{r['impl']}**" if r["source"] == "jaxseg_losses" else r["impl"]
        mine = r["source"] == "jaxseg_losses"
        rounds = r["rounds"] if mine and "rounds" in r else _harness.NONE
        jumps = r["jumps"] if mine and "jumps" in r else _harness.NONE
        lines.append(
            f"| {r['case']} | {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
            f"{r['ratio']:.2f} | {compile_s} | {temp} | {rounds} | {jumps} | {_check(r)} |"
        )
    lines += [
        "",
        "## Lesion-wise scores per image",
        "",
        "| implementation | Dice | HD95 | TP/FP/FN |",
        "| --- | --- | --- | --- |",
        *_lesion_lines(result["rows"]),
        "",
        "× host: median time over the host implementation in the same run (`scipy.ndimage.label` "
        "on each image in turn; the BraTS lesion-wise algorithm of `tests/references/lesions.py` "
        "on each image in turn). rounds, jumps: the hooking rounds and pointer-jumping steps "
        "`label_components` took for the whole batch. The host implementations run on one "
        "core; the JAX programs on the default device. temp MB: the compiled program's "
        "temporary buffers.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options; ``repeats`` and ``warmup`` filled in (7 and 1, or 2 and 1 with --quick)."""
    parser = _harness.ArgumentParser(DESCRIPTION, repeats=7, warmup=1)
    parser.add_argument("--tag", default=None, help="suffix of the output names (_<backend>)")
    return parser.parse(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs every case and writes ``results_instances{tag}.md`` and ``.json`` under ``--out``."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats, warmup = args.repeats, args.warmup
    lesion_repeats = min(repeats, LESION_REPEATS)
    tag = args.tag if args.tag is not None else f"_{jax.default_backend()}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    print(_harness.machine_line(machine))
    programs = _Programs()
    rows = []
    for name, masks, connectivity in component_cases(sizes):
        rows += run_components_case(
            name, masks, connectivity, programs, repeats=repeats, warmup=warmup
        )
    rows += run_lesions(
        sizes["lesions"],
        sizes["lesion_count"],
        sizes["max_lesions"],
        repeats=lesion_repeats,
        warmup=0,  # the calls that computed the values warmed both up
    )
    _harness.note_load_average(machine, "end", digits=2)
    result: dict[str, Any] = {
        "machine": machine,
        "quick": args.quick,
        "repeats": repeats,
        "warmup": warmup,
        "lesion_repeats": lesion_repeats,
        "rows": rows,
        "targets": targets(rows, machine["backend"]),
    }
    stem = f"results_instances{tag}"
    _harness.write_results(out, stem, result, markdown_report(result))
    _harness.print_targets(result["targets"])
    print(f"wrote {out / stem}.{{md,json}}")
    return result


if __name__ == "__main__":
    main()
