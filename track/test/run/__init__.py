"""Tests of twistd track end to end: options, the service, workers, logs, shutdown."""
