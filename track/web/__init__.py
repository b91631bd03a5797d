"""The HTTP edge: the site, the routes, reading bodies, CORS, client addresses, OpenAPI."""
