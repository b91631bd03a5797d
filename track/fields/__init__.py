"""The field tables of the four event kinds and the parsers of their values."""
