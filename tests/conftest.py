"""Suite-wide settings. With ``EOL_FUZZ_DERANDOMIZE=1`` (set by .ci/run) every hypothesis test
draws the same examples on every run: CI judges the change, not a new random find (those are
explored by `make test` on developers' machines and become regression tests)."""

from __future__ import annotations

import os

from hypothesis import settings

# Plan files are tests through the eol_station pytest plugin; the deliberately broken plans
# under data/ are inputs of tests/plan, not plans to prove.
collect_ignore_glob = ["data/*"]

settings.register_profile("ci", derandomize=True)
if os.environ.get("EOL_FUZZ_DERANDOMIZE") == "1":
    settings.load_profile("ci")
