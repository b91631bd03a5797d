"""MySQL and MariaDB: the dialect (connections, DDL), the pymysql driver
for adbapi, and the failure table (errors.py)."""
