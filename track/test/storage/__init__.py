"""Tests of the store, SQL literals, DSNs, what each failure means, refused rows."""
