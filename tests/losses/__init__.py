"""Tests of the loss families, a file per family module of jaxseg_losses.losses."""
