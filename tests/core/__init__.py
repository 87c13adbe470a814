"""Tests of the private engine: input handling, value checks, fused kernels, define_loss."""
