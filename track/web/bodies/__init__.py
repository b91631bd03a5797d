"""Request bodies: decoding (Content-Encoding, size limits), form and JSON
fields, batch bodies, and the errors a client is told about them."""
