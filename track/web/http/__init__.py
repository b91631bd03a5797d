"""HTTP/1.1 as track speaks it: the Site, its connections and requests, the
answers given before a request is routed, and the parts of RFC 9112 checked
by hand."""
