"""Tests of the training examples (examples/segmentation) and the Colab notebook."""
