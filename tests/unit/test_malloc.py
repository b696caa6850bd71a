"""The fixed mmap threshold: set through glibc's mallopt where glibc is the C library."""

import platform

import pytest

from psmon.malloc import fix_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's M_MMAP_THRESHOLD is glibc's")
def test_glibc_takes_the_threshold() -> None:
    assert fix_mmap_threshold(128) is True


def test_zero_leaves_the_default() -> None:
    assert fix_mmap_threshold(0) is False
