from cnnexp.tracking.store import *  # noqa: F403
from cnnexp.tracking.store import _digest, _ending  # noqa: F401
