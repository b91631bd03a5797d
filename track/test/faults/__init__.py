"""Tests of private mariadbd servers stopped, crashed, made read-only; full disks."""
