"""Tests of the image-geometry primitives: distance transforms, resizing."""
