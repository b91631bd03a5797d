"""Tests against a real 3-node Galera cluster (track.test.galera): several instances, nodes breaking."""
