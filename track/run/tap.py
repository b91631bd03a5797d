"""The twistd entry point: `twistd track [options]`.

Options are checked completely before anything starts (track/run/options.py
makes a Config of them), and the database is reached (and migrated)
synchronously in makeService, so a wrong DSN or an unreachable server ends
start-up with one clear line and a non-zero exit.  What is then built for
the process's role is track/run/build.py's.
"""

from __future__ import annotations

from twisted.application.service import IService

from track.events.files import served_kinds
from track.events.subset import EventsFileError
from track.logs import Logger, set_level
from track.run.accepting import descriptors_at_start
from track.run.build import build_service
from track.run.listen import address_taken
from track.run.options import Options
from track.run.secrets import DSN_ENV
from track.spool.lock import DirectoryLock, SpoolLocked
from track.storage.prepare import prepare_database

__all__ = ["Options", "makeService"]  # what twistd's ServiceMaker reads

log = Logger(namespace="track")


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    config = options.config
    set_level(config.level)
    descriptors_at_start()
    if config.dsn_password_on_command_line:
        log.warn("--dsn carries a password, which every local user can read (ps, /proc/PID/cmdline): "
                 "put the DSN in a file only you can read (chmod 600) and pass --dsn-file PATH, "
                 "or set {env}", env=DSN_ENV)
    # What a restart beside a process still running finds, said in one line
    # each before anything else happens: the address, the spool.
    for description in filter(None, (config.endpoint, config.admin_endpoint)):
        taken = address_taken(reactor, description)
        if taken:
            raise SystemExit(f"track: {taken}")
    spool_lock = None
    if config.spool_dir:
        try:
            spool_lock = DirectoryLock(config.spool_dir).acquire()
        except SpoolLocked as e:
            raise SystemExit(f"track: {e}") from None
    try:
        declared = served_kinds(config.events)  # read again: checked by the options, it may have changed since
    except EventsFileError as e:
        raise SystemExit(f"track: --events: {e}") from None
    fitted = prepare_database(config.dsn, declared)
    if fitted is None and not config.spool_dir:
        raise SystemExit(f"track: cannot use database {config.dsn.redacted()}: unreachable, and no spool")
    return build_service(config, options.role, reactor, fitted, spool_lock)
