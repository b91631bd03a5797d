"""Tests of the admin listener, the live page and the numbers across workers."""
