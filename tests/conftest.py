"""Settings shared by every suite."""

from __future__ import annotations

import os

from hypothesis import settings

# On CI every property test replays the same examples, so a run's verdict does not depend on
# luck; on a developer's machine each run explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
