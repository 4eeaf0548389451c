import json
import os
import sysconfig

import sqlite_utils

from soak.judging.attribution import APPLICATION, STDLIB, Attributor
from soak.model.finding import Frame


def test_stdlib_library_and_application_files() -> None:
    attributor = Attributor(["/srv/app"])
    assert attributor.library(json.__file__) == STDLIB
    assert attributor.library(os.path.join(sysconfig.get_paths()["stdlib"], "collections", "__init__.py")) == STDLIB
    assert attributor.library(sqlite_utils.__file__) == "sqlite-utils"
    assert attributor.library("/srv/app/handlers.py") == APPLICATION


def test_application_roots_win_over_site_packages() -> None:
    site_dir = os.path.dirname(os.path.dirname(sqlite_utils.__file__))
    attributor = Attributor([os.path.join(site_dir, "sqlite_utils")])
    assert attributor.library(sqlite_utils.__file__) == APPLICATION


def test_call_site_is_the_first_application_frame_of_a_library_allocation() -> None:
    attributor = Attributor(["/srv/app"])
    frames = [
        Frame(json.__file__, 10, "dumps"),
        Frame(sqlite_utils.__file__, 5, "insert"),
        Frame("/srv/app/handlers.py", 42, "handle"),
        Frame("/srv/app/main.py", 7, "main"),
    ]
    assert attributor.call_site(frames) == frames[2]
    assert attributor.call_site(frames[2:]) is None
