"""The admin listener (`--admin-http`): metrics, health and a live page for
operators, with the contents of recent events, which never go to the public
listener."""
