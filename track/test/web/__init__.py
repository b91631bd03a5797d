"""Tests of the HTTP edge: routes, bodies, hostile input, CORS and OpenAPI."""
