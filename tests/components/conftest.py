# The copy of the example flows in a temporary DP_FLOWS_DIR, as the code location's tests use it:
# the components must build what the location builds from the same flows.
from tests.location.conftest import flows_dir

__all__ = ["flows_dir"]
