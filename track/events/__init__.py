"""Event kinds declared in a file (`--events FILE`): the JSON Schema subset
they are written in, the shipped file of the original four, and the checks
between a file and a database."""
