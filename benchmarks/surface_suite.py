"""Surface-metric benchmarks: the distance transform and HD95 against host implementations.

``python -m benchmarks.surface_suite [--quick] [--out DIR] [--repeats N] [--tag SUFFIX]`` writes
``results_surface{tag}.md`` and ``.json`` under ``--out`` (default ``benchmarks/results``, tag
``_<backend>``). Two cases, each timed against host (NumPy/scipy) implementations in the same
run, so that the ratios hold even on a busy machine:

* ``edt``: ``jsl.metrics.distance_transform`` of a ``[128, 128, 128]`` mask (balls in an empty
  volume, and uniform noise) against ``scipy.ndimage.distance_transform_edt``;
* ``hd95``: ``jsl.metrics.hausdorff_distance(percentile=95)`` of ``[2, 96, 96, 96]`` and
  ``[16, 512, 512]`` label maps with 4 classes (3 without the background) and anisotropic
  spacing, against two host
  implementations of MONAI's algorithm written here from its documentation (no MONAI, no
  torch): per image and class, crop both masks to the bounding box of their union with a margin
  of one voxel, take the surfaces as ``mask ^ binary_erosion(mask)``, and measure each surface's
  distances to the other either with ``scipy.ndimage.distance_transform_edt`` (MONAI's
  ``get_surface_distance``) or with a ``scipy.spatial.cKDTree`` of the surface points; then the
  95th percentile of each direction, and the larger of the two.

Each round runs every implementation of a case once, in turn; the tables report medians over the
rounds (after warm-up calls), the JAX programs' compile time and temporary memory
(``memory_analysis().temp_size_in_bytes``), and the ratio to the reference in the same run.
"""

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy
import scipy.ndimage as ndi
import scipy.spatial

import jaxseg_losses as jsl
from benchmarks import _harness

FULL = {"edt": (128, 128, 128), "hd95": ((2, 96, 96, 96), (16, 512, 512)), "classes": 4}
QUICK = {"edt": (24, 24, 24), "hd95": ((1, 16, 16, 16), (2, 32, 32)), "classes": 3}
# Element sizes of the 3-D case; a 2-D case takes the first two.
SPACING = (0.9, 0.9, 1.5)
PERCENTILE = 95.0


# ----------------------------------------------------------------------------------------------
# Data.


def _balls(shape: tuple[int, ...], rng: np.random.Generator, count: int) -> np.ndarray:
    """True inside ``count`` random balls."""
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    inside = np.zeros(shape, bool)
    for _ in range(count):
        centre = [rng.uniform(0.2 * n, 0.8 * n) for n in shape]
        radius = rng.uniform(0.06, 0.16) * min(shape)
        inside |= sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
    return inside


def edt_masks(shape: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """``balls``: distances from everywhere outside to 5 balls; ``noise``: a 50% random mask."""
    rng = np.random.default_rng(seed)
    return {"balls": ~_balls(shape, rng, 5), "noise": rng.random(shape) < 0.5}


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def label_maps(
    shape: tuple[int, ...], num_classes: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth: one ellipsoid per class (larger classes first) over background 0; the
    prediction: each ellipsoid moved by up to 3 voxels and resized by up to 15%, plus a few
    stray blobs (the voxels HD95 is meant to discount)."""
    rng = np.random.default_rng(seed)
    batch, spatial = shape[0], shape[1:]
    labels = np.zeros(shape, np.int32)
    predictions = np.zeros(shape, np.int32)
    for b in range(batch):
        for c in range(1, num_classes):
            size = 0.3 / c
            centre = np.array([rng.uniform(0.3 * n, 0.7 * n) for n in spatial])
            radii = np.array([rng.uniform(0.6, 1.0) * size * n for n in spatial])
            labels[b][_ellipsoid(spatial, centre, radii)] = c
            moved = centre + rng.uniform(-3, 3, len(spatial))
            resized = radii * rng.uniform(0.85, 1.15, len(spatial))
            predictions[b][_ellipsoid(spatial, moved, resized)] = c
            for _ in range(2):
                stray = [rng.uniform(0.1 * n, 0.9 * n) for n in spatial]
                predictions[b][_ellipsoid(spatial, stray, [1.5] * len(spatial))] = c
    return predictions, labels


# ----------------------------------------------------------------------------------------------
# Host implementations of MONAI's algorithm.


def _cropped(p: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the bounding box of their union, with one zero voxel around it."""
    union = p | g
    lo = np.argwhere(union).min(axis=0)
    hi = np.argwhere(union).max(axis=0) + 1
    box = tuple(slice(a, z) for a, z in zip(lo, hi, strict=True))
    return np.pad(p[box], 1), np.pad(g[box], 1)


def _surfaces(p: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return p ^ ndi.binary_erosion(p), g ^ ndi.binary_erosion(g)


def _directed_edt(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    return ndi.distance_transform_edt(~b, sampling=spacing)[a]


def _directed_kdtree(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    scale = np.asarray(spacing)
    tree = scipy.spatial.cKDTree(np.argwhere(b) * scale)
    return tree.query(np.argwhere(a) * scale)[0]


def host_hd95(
    predictions: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    spacing: Sequence[float],
    directed: Callable[[np.ndarray, np.ndarray, Sequence[float]], np.ndarray],
) -> np.ndarray:
    """HD95 ``[B, C - 1]`` per image and class, MONAI's way, on the host."""
    out = np.zeros((predictions.shape[0], num_classes - 1))
    for b in range(predictions.shape[0]):
        for c in range(1, num_classes):
            p, g = predictions[b] == c, labels[b] == c
            if not p.any() and not g.any():
                out[b, c - 1] = np.nan
                continue
            if not p.any() or not g.any():
                out[b, c - 1] = np.inf
                continue
            pe, ge = _surfaces(*_cropped(p, g))
            forward = np.percentile(directed(pe, ge, spacing), PERCENTILE)
            backward = np.percentile(directed(ge, pe, spacing), PERCENTILE)
            out[b, c - 1] = max(forward, backward)
    return out


# ----------------------------------------------------------------------------------------------
# Timing.


def run_edt(shape: tuple[int, ...], *, repeats: int, warmup: int) -> list[dict[str, Any]]:
    rows = []
    masks = edt_masks(shape)
    # One program serves every mask of the shape: compiled (and its compile time counted) once.
    program = _harness.compile_timed(jsl.metrics.distance_transform, jnp.asarray(masks["balls"]))
    for name, mask in masks.items():
        case = f"edt {name} {list(shape)}"
        device_mask = jax.block_until_ready(jnp.asarray(mask))
        ours = np.asarray(program.run(device_mask))
        expected = ndi.distance_transform_edt(mask)
        error = float(np.max(np.abs(ours - expected)))
        times = _harness.interleaved(
            {
                "jsl": lambda m=device_mask: program.run(m),
                "scipy": lambda m=mask: ndi.distance_transform_edt(m),
            },
            repeats=repeats,
            warmup=warmup,
        )
        mine = _harness.timing_row(
            case,
            "jsl.metrics.distance_transform",
            "jaxseg_losses",
            times["jsl"],
            max_abs_error=error,
            input_bytes=int(mask.size * 4),
        )
        mine["compile_s"] = program.compile_s if not rows else None
        mine["temp_bytes"] = program.temp_bytes
        reference = _harness.timing_row(
            case, "scipy.ndimage.distance_transform_edt", "host", times["scipy"]
        )
        mine["ratio"] = mine["median_ms"] / reference["median_ms"]
        reference["ratio"] = 1.0
        rows += [mine, reference]
        print(f"{case}: jsl {mine['median_ms']:.1f} ms, scipy {reference['median_ms']:.1f} ms")
    return rows


def run_hd95(
    shape: tuple[int, ...], num_classes: int, *, repeats: int, warmup: int
) -> list[dict[str, Any]]:
    case = f"hd95 {list(shape)} {num_classes} classes"
    spacing = SPACING[: len(shape) - 1]
    predictions, labels = label_maps(shape, num_classes)
    device = jax.block_until_ready((jnp.asarray(predictions), jnp.asarray(labels)))

    def ours(p: jax.Array, g: jax.Array) -> jax.Array:
        return jsl.metrics.hausdorff_distance(
            p, g, num_classes=num_classes, percentile=PERCENTILE, spacing=spacing
        )

    program = _harness.compile_timed(ours, *device)
    value = np.asarray(program.run(*device))
    by_edt = host_hd95(predictions, labels, num_classes, spacing, _directed_edt)
    by_tree = host_hd95(predictions, labels, num_classes, spacing, _directed_kdtree)
    times = _harness.interleaved(
        {
            "jsl": lambda: program.run(*device),
            "edt": lambda: host_hd95(predictions, labels, num_classes, spacing, _directed_edt),
            "kdtree": lambda: host_hd95(
                predictions, labels, num_classes, spacing, _directed_kdtree
            ),
        },
        repeats=repeats,
        warmup=warmup,
    )
    rows = [
        _harness.timing_row(
            case,
            "jsl.metrics.hausdorff_distance(percentile=95)",
            "jaxseg_losses",
            times["jsl"],
            values=value.tolist(),
            input_bytes=int(predictions.nbytes + labels.nbytes),
        ),
        _harness.timing_row(
            case, "MONAI-style, scipy EDT (host)", "host", times["edt"], values=by_edt.tolist()
        ),
        _harness.timing_row(
            case, "MONAI-style, cKDTree (host)", "host", times["kdtree"], values=by_tree.tolist()
        ),
    ]
    rows[0]["compile_s"], rows[0]["temp_bytes"] = program.compile_s, program.temp_bytes
    reference = rows[1]["median_ms"]
    for row in rows:
        row["ratio"] = row["median_ms"] / reference
        row["max_abs_difference"] = float(
            np.nanmax(np.abs(np.asarray(row["values"], np.float64) - by_edt))
        )
    print(case + ": " + ", ".join(f"{r['impl']} {r['median_ms']:.0f} ms" for r in rows))
    return rows


# ----------------------------------------------------------------------------------------------
# Reports.


def machine_description() -> dict[str, Any]:
    """What the numbers were measured on, with scipy's and numpy's versions."""
    versions = {"scipy": scipy.__version__, "numpy": np.__version__}
    return _harness.machine_description(versions, load_digits=2)


# What was tried for the CPU bound on HD95, with the figures measured then (2-core Intel Xeon,
# [2, 96, 96, 96], 4 classes), reported where the bound is missed.
HD95_TRIED = (
    "Each image and class is transformed in the smallest of 4 static cubes (sides k/4 of the "
    "largest axis, at least 16) that holds both its surfaces, one lax.switch branch per size: "
    "6.98x -> 3.05x the cropped host version, temporary memory 551 -> 104 MB. The "
    "host crops each pair to its exact box, so small structures cost it their size while here "
    "they cost the smallest cube; its distance transform is also scipy's C loop over one crop "
    "at a time, against a batched transform of every crop of a level. Not tried: more levels "
    "(each adds a compiled transform) or transforms restricted to a band around the surfaces."
)


def targets(rows: Sequence[dict[str, Any]], backend: str) -> list[dict[str, Any]]:
    """On CPU: the distance transform within 2x of scipy's and HD95 within 1.5x of the cropped
    host version. On an accelerator: both at least 10x faster than the host implementations."""
    out = []
    for row in rows:
        if row["source"] != "jaxseg_losses":
            continue
        edt = row["case"].startswith("edt")
        if backend == "cpu":
            bound = 2.0 if edt else 1.5
        else:
            bound = 0.1
        reference = "scipy EDT" if edt else "MONAI-style scipy EDT"
        entry = _harness.target(f"{row['case']}: {row['impl']} / {reference}", bound, row["ratio"])
        entry["tried"] = None if entry["met"] or edt else HD95_TRIED
        out.append(entry)
    return out


def markdown_report(result: dict[str, Any]) -> str:
    lines = _harness.header_lines(
        "Surface-metric benchmark results",
        result,
        ("jax", "scipy", "numpy"),
        mode_note=f"; HD95 spacing {list(SPACING)} (3-D), the first two (2-D)",
    )
    lines += ["", "## Targets", "", *_harness.targets_table(result["targets"])]
    if any(t.get("tried") for t in result["targets"]):
        lines += ["", f"Where HD95's bound is missed: {HD95_TRIED}"]
    lines += [
        "",
        "## Measurements",
        "",
        "| case | implementation | median ms | min ms | × reference | compile s | temp MB "
        "| check |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        if "max_abs_error" in r:
            check = f"max error vs scipy {r['max_abs_error']:.1e}"
        elif "max_abs_difference" in r:
            check = f"max difference vs scipy EDT {r['max_abs_difference']:.1e}"
        else:
            check = ""
        compile_s = _harness.fmt(r["compile_s"], ".2f")
        temp = _harness.megabytes(r["temp_bytes"], unit=2**20)
        name = f"**{r['impl']}**" if r["source"] == "jaxseg_losses" else r["impl"]
        lines.append(
            f"| {r['case']} | {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
            f"{r['ratio']:.2f} | {compile_s} | {temp} | {check} |"
        )
    lines += [
        "",
        "× reference: median time over scipy's `distance_transform_edt` (edt) or over the "
        "MONAI-style host implementation with scipy's EDT (hd95), in the same run. The host "
        "implementations compute in float64 on one core; the JAX programs in float32 on the "
        "default device. temp MB: the compiled program's temporary buffers.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options; ``repeats`` and ``warmup`` filled in (7 and 1, or 2 and 1 with --quick)."""
    parser = _harness.ArgumentParser(__doc__.splitlines()[0], repeats=7, warmup=1)
    parser.add_argument("--tag", default=None, help="suffix of the output names (_<backend>)")
    return parser.parse(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs both cases and writes ``results_surface{tag}.md`` and ``.json`` under ``--out``."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats, warmup = args.repeats, args.warmup
    tag = args.tag if args.tag is not None else f"_{jax.default_backend()}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    print(_harness.machine_line(machine))
    rows = run_edt(sizes["edt"], repeats=repeats, warmup=warmup)
    for shape in sizes["hd95"]:
        rows += run_hd95(shape, sizes["classes"], repeats=repeats, warmup=warmup)
    _harness.note_load_average(machine, "end", digits=2)
    result: dict[str, Any] = {
        "machine": machine,
        "quick": args.quick,
        "repeats": repeats,
        "warmup": warmup,
        "rows": rows,
        "targets": targets(rows, machine["backend"]),
    }
    stem = f"results_surface{tag}"
    _harness.write_results(out, stem, result, markdown_report(result))
    _harness.print_targets(result["targets"])
    print(f"wrote {out / stem}.{{md,json}}")
    return result


if __name__ == "__main__":
    main()
