"""Image-geometry primitives that the losses and the metrics share.

Exact distance transforms on static shapes (``distance``). Nothing here knows about losses or
metrics; both build on it.
"""
