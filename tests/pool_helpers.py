"""Worker factories for the pool tests; module-level so spawned processes can import them."""
from __future__ import annotations

import os
import time


def make_square_worker():
    """Initialised once per process: records its pid and an init time, as loading a model would."""
    started = time.time()
    pid = os.getpid()
    env_tag = os.environ.get("POOL_TEST_TAG", "")

    def square(x: int):
        if x == 13:
            raise ValueError("unlucky number")
        if x == 21:
            os._exit(3)  # a hard crash, as a segfault in native code would be
        time.sleep(0.05)  # long enough that both workers get items
        return x * x, pid, started, env_tag
    return square


def make_sleepy_worker():
    """Each item takes a second: a pool that is still busy when its parent is killed."""
    def sleepy(x: int):
        time.sleep(1.0)
        return x
    return sleepy
