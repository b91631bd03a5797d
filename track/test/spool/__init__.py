"""Tests of the spool on disk and what it promises."""
