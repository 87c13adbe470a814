"""The engine below every public module: private, imported by the library only.

The modules here are the shared seams that the loss families (``losses/``), the combinators
(``combine``, ``deep_supervision``, ``accumulate``, ``per_sample``) and the metrics
(``metrics/``) build on, so that none of them reads another public module's private names:

* ``checks``: trace-time validation whose errors name the argument, the expected and the
  received; the opt-in value checks of ``jsl.checked``.
* ``inputs``: the data contract (``prepare``) and ``Inputs``, the statistics every loss reads
  from the logits, each computed once per call.
* ``fused``: the kernels behind those statistics (one log-sum-exp per pixel with analytic,
  checkpointed derivatives).
* ``engine``: ``LossDefinition``, ``define_loss`` and the evaluation of described terms.
* ``signatures``: the signatures of the generated public functions (losses, pairs, scores) and
  the binding of their calls; ``docs``: the shared docstring paragraphs.
* ``exact``: exact integer counts past 2³¹ without x64, compensated float sums.
"""
