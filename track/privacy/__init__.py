"""Privacy at rest: forgetting one user's events, and suppressing them."""
