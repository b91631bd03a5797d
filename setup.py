"""Install track; `twisted/plugins/track_plugin.py` makes `twistd track` work."""

import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(r'__version__ = "([^"]+)"', Path("track/__init__.py").read_text()).group(1)

setup(
    name="track",
    version=version,
    description="HTTP event collector that answers 201 only after the event is committed to MySQL",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twisted.plugins is a namespace directory here: it must never get an
    # __init__.py of ours, or it would shadow Twisted's own plugins.
    packages=[*find_packages(include=["track", "track.*"]), "twisted.plugins"],
    include_package_data=False,
    # The spool written by an earlier release, read by the tests; the browser
    # tracker that GET /track.js serves; the admin listener's live page.
    # The client's py.typed and its snapshot of the collector's field rules.
    # The original four event kinds, declared as an events file.
    package_data={"track.test": ["fixtures/*/*"], "track.web": ["static/*"], "track.admin": ["static/*"],
                  "track.client": ["py.typed", "rules.json"],
                  "track.events": ["original.json"]},
    install_requires=[
        "Twisted>=25.5.0,<27",  # track/web/http/twistedhttp.py leans on private twisted.web.http names
        "klein>=23.5.0",
        "PyMySQL>=1.1.0",
        "prometheus_client>=0.17.0",
        "multipart>=1.2.0",  # multipart/form-data bodies (track/web/bodies/formdata.py)
        "rich>=13.0",  # the progress bar of python -m track.client import (imported only there)
        "PyYAML>=6.0",  # --events FILE written as YAML (track/events/files.py)
    ],
    extras_require={
        "test": [
            "treq>=23.11.0",
            "hypothesis>=6.90.0",
            "schemathesis>=4.0.0",
            "selenium>=4.20",  # drives Debian's chromium in the real-browser tests
        ],
        # Type and lint checks, and mutation testing (see CONTRIBUTING.md).
        "dev": [
            "mypy>=1.10",
            "mypy-zope>=1.0.5",
            "ruff>=0.6",
            "types-PyMySQL>=1.1",
            "types-PyYAML>=6.0",
            "mutmut>=3.2",
            "pytest>=8.0",
        ],
    },
    zip_safe=False,
)
