"""How hard the property tests search: fixed and quick in CI, random and long by `make fuzz`."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ = os.environ.get("FUZZ") == "1"


def property_settings(examples: int) -> settings:
    """Derandomized `examples` by default; with FUZZ=1, random seeds and FUZZ_EXAMPLES each."""
    return settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")) if FUZZ else examples,
        derandomize=not FUZZ,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        print_blob=True,
    )
