"""Tests of the batcher and the writer."""
