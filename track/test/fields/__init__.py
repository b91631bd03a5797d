"""Tests of the field tables and their parsers."""
