"""Tests of the Python client (track.client) and its import command."""
