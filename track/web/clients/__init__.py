"""Who the client is and what it may do: its address (--trusted-proxy,
--anonymize-ip), its origin (--cors-origin) and its rate (--rate-limit)."""
