"""Scores of counts (IoU, Dice, precision, recall, ..., generalized Dice): each against its
definition, every empty rule, scores of a confusion matrix equal scores of its counts.

References: tests/references/metrics.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses import metrics
from tests.references import metrics as ref

M = metrics
NAN = math.nan


# ----------------------------------------------------------------------------------------------
# Scores: one definition each, every empty rule.


def _edge_counts():
    """Counts ``[B, C]`` covering every zero pattern of TP/FP/FN/TN, and random ones."""
    r = np.random.default_rng(5)
    patterns = np.array(
        [[tp, fp, fn, tn] for tp in (0, 3) for fp in (0, 2) for fn in (0, 1) for tn in (0, 5)]
    )  # 16 patterns, all-zero included
    random = r.integers(0, 20, (8, 4))
    table = np.concatenate([patterns, random]).reshape(4, 6, 4)
    return {f: table[..., i] for i, f in enumerate(("tp", "fp", "fn", "tn"))}


SCORE_FUNCTIONS = {name: getattr(M, name) for name in ref.SCORE_NAMES}


def test_scores_match_their_definitions():
    fields = _edge_counts()
    options = [
        {},
        {"zero_division": 1.0},
        {"zero_division": 0.0, "ignore_empty": True},
        {"ignore_empty": True},
    ]

    # The empty rules are one code path shared by every score: all scores with the defaults,
    # the other options on a plain ratio, a composite score and MCC.
    optioned = ("dice", "precision", "balanced_accuracy", "mcc")

    @jax.jit
    def all_scores(tp, fp, fn, tn):
        counts = M.Counts(tp, fp, fn, tn)
        out = {}
        for i, opts in enumerate(options):
            for name, fn_ in SCORE_FUNCTIONS.items():
                if i and name not in optioned:
                    continue
                kwargs = {"beta": 2.0} if name == "f_beta" else {}
                out[f"{name}/{i}"] = fn_(counts, **kwargs, **opts)
        out["f_beta_half"] = M.f_beta(counts, beta=0.5)
        out["f_beta_traced"] = M.f_beta(counts, beta=tp[0, 0].astype(jnp.float32) * 0 + 2.0)
        return out

    results = all_scores(*(fields[f] for f in ("tp", "fp", "fn", "tn")))
    for i, opts in enumerate(options):
        expected_all = ref.scores(**fields, beta=2.0)
        for name in SCORE_FUNCTIONS if i == 0 else optioned:
            expected = ref.apply_empty_rules(expected_all[name], fields["tp"], fields["fn"], **opts)
            actual = results[f"{name}/{i}"]
            assert actual.dtype == jnp.float32 and actual.shape == (4, 6), name
            # The prevalence threshold's numerator cancels: float32 keeps about 5 digits there.
            rtol = 2e-5 if name == "prevalence_threshold" else 2e-6
            np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(
        results["f_beta_half"], ref.scores(**fields, beta=0.5)["f_beta"], rtol=1e-6
    )
    np.testing.assert_allclose(results["f_beta_traced"], results["f_beta/0"], rtol=1e-6)


def test_scores_of_a_matrix_equal_scores_of_its_counts_and_perfect_ones_are_one():
    r = np.random.default_rng(6)
    matrices = r.integers(0, 9, (4, 4, 4))
    matrices[:2, 2, :] = 0  # class 2 absent from the labels
    matrices[:2, :, 3] = 0  # class 3 never predicted
    matrices[3] = np.diag([5, 1, 7, 2])  # a perfect prediction
    tp = np.einsum("bcc->bc", matrices)
    fields = {
        "tp": tp,
        "fp": matrices.sum(1) - tp,
        "fn": matrices.sum(2) - tp,
        "tn": matrices.sum((1, 2))[:, None] - matrices.sum(1) - matrices.sum(2) + tp,
    }

    @jax.jit
    def both(m, tp, fp, fn, tn):
        counts = M.Counts(tp, fp, fn, tn)
        out = {n: (f(m), f(counts)) for n, f in SCORE_FUNCTIONS.items()}
        out["generalized_dice"] = (M.generalized_dice(m), M.generalized_dice(counts))
        return out

    # Error rates are 0, and so is the prevalence threshold: sqrt(1 * 0) + 1 - 1 over 1.
    zero = {
        "miss_rate",
        "fall_out",
        "false_discovery_rate",
        "false_omission_rate",
        "prevalence_threshold",
    }
    for name, (of_matrix, of_counts) in both(matrices, *fields.values()).items():
        ideal = 0.0 if name in zero else 1.0
        np.testing.assert_allclose(of_matrix[3], ideal, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(of_counts[3], ideal, atol=1e-6, err_msg=name)
        if name == "generalized_dice":
            continue
        expected = ref.scores(**fields)[name]
        rtol = 2e-5 if name == "prevalence_threshold" else 2e-6
        np.testing.assert_allclose(of_matrix, expected, rtol=rtol, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(of_counts, expected, rtol=rtol, atol=1e-7, err_msg=name)


def test_generalized_dice_matches_its_definition():
    fields = _edge_counts()
    fields["tp"][0, :] = 0  # an image with no ground truth
    fields["fn"][0, :] = 0
    options = [
        {},
        {"weight_type": "simple"},
        {"weight_type": "uniform"},
        {"include_background": False, "zero_division": 1.0},
        {"classes": (1, 2, 4), "class_weights": [1.0, 2.0, 1.0, 1.0, 0.5, 1.0]},
        {"ignore_empty": True},
    ]

    @jax.jit
    def run(tp, fp, fn, tn):
        counts = M.Counts(tp, fp, fn, tn)
        out = [M.generalized_dice(counts, **o) for o in options]
        return out, M.generalized_dice(counts, reduction="mean", return_count=True)

    results, (mean, count) = run(*(fields[f] for f in ("tp", "fp", "fn", "tn")))
    for opts, actual in zip(options, results, strict=True):
        keep, _ = ref.class_selection(opts, 6)
        np_opts = {k: v for k, v in opts.items() if k not in ("include_background", "classes")}
        expected = ref.generalized_dice(
            fields["tp"], fields["fp"], fields["fn"], keep=keep, **np_opts
        )
        np.testing.assert_allclose(actual, expected, rtol=1e-6, err_msg=str(opts))
    np.testing.assert_allclose(mean, np.nanmean(np.asarray(results[0])), rtol=1e-6)
    assert int(count) == int(np.sum(~np.isnan(np.asarray(results[0]))))
