"""The open-files limit a manager and a hollow fleet raise at start, and the call links
a manager allows itself under it (common/open_files.py). Each case runs in a child
process, whose limits it may change without touching the test's own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procs import REPO

CHILD = """
import resource, sys
from flock.common import open_files
soft, hard = {soft}, resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))
before = open_files.link_budget()
after_soft = open_files.raise_limit()
print(before, after_soft == hard, open_files.link_budget() == max(0, hard - hard // 4 - 512))
"""


# A linked node's gRPC channel is closed while its link carries all (agent_client.py):
# links take the limit less a quarter (for channels) and a reserve of 512.
@pytest.mark.parametrize("soft,budget", [(1024, 256), (2048, 1024), (4096, 2560)])
def test_links_take_the_limit_less_a_quarter_and_a_reserve_and_the_limit_is_raised(
        soft, budget):
    out = subprocess.run([sys.executable, "-c", CHILD.format(soft=soft)], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == [str(budget), "True", "True"]
