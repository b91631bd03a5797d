"""Running track: the twistd options and service, the listening socket, worker processes."""
