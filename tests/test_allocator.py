"""Huge pages for big CPU tensors: on by default once jsmp is imported, off with THP_MEM_ALLOC_ENABLE=0."""

import json
import os
import subprocess
import sys

import pytest

from jsmp.allocator import ENV, kernel_offers_huge_pages

# Allocates a 64 MB tensor twice (glibc unmaps the first on free) and counts the second one's page faults.
CHILD = """
import json, resource
import jsmp, torch
from jsmp.allocator import huge_pages_in_effect
torch.ones(16 << 20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(16 << 20)
print(json.dumps({"in_effect": huge_pages_in_effect(),
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""
PAGES = (64 << 20) // 4096

needs_thp = pytest.mark.skipif(not kernel_offers_huge_pages(), reason="the kernel offers no transparent huge pages")


def _child(env: dict) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != ENV} | env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@needs_thp
def test_huge_pages_are_on_by_default_and_cut_page_faults():
    on, off = _child({}), _child({ENV: "0"})
    assert on["in_effect"] and not off["in_effect"]
    assert off["faults"] > 0.9 * PAGES  # a fresh 64 MB block: one fault per 4 KB page
    assert on["faults"] < 0.1 * PAGES  # 2 MB pages: 512 times fewer


@pytest.mark.skipif(kernel_offers_huge_pages(), reason="test_huge_pages_are_on_by_default_and_cut_page_faults asserts it")
def test_the_environment_decides():
    assert not _child({ENV: "0"})["in_effect"]
