"""track: an HTTP edge that stores analytics events in MySQL, 201 only after commit."""

__version__ = "1.0.0"
