"""The dedup key: layout, comments and docstrings do not change it; code does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from archive.normalize import normalized_hash, normalized_source

KERNEL = '''
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """Elementwise x + y."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask), mask=mask)
'''

RESTYLED = """# the same kernel, another author's habits
import triton
import triton.language as tl
@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK : tl.constexpr):
    offsets = (tl.program_id(0) * BLOCK) + tl.arange(0, BLOCK)   # one block per program
    mask = (offsets < n)
    tl.store(
        out_ptr + offsets,
        tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask),
        mask=mask,
    )
"""


def test_layout_comments_and_docstrings_do_not_change_the_hash():
    assert normalized_hash(KERNEL) == normalized_hash(RESTYLED)
    assert normalized_source(KERNEL) == normalized_source(RESTYLED)


def test_a_change_in_the_code_changes_the_hash():
    assert normalized_hash(KERNEL) != normalized_hash(
        KERNEL.replace("x_ptr + offsets", "x_ptr + offsets + 1")
    )
    assert normalized_hash(KERNEL) != normalized_hash(KERNEL.replace("BLOCK: tl.constexpr", "BLOCK"))


def test_a_string_that_is_not_a_docstring_is_code():
    assert normalized_hash('x = "a"\n') != normalized_hash('x = "b"\n')


def test_a_function_that_only_had_a_docstring_still_normalizes():
    assert normalized_source('def f():\n    """Nothing yet."""\n') == "def f():\n    pass"


def test_a_source_that_does_not_parse_still_has_a_stable_key():
    broken = "def f(:\n    return 1   \r\n"
    assert normalized_hash(broken) == normalized_hash("def f(:\n    return 1\n")
    assert normalized_hash(broken) != normalized_hash("def f(:\n    return 2\n")


@given(
    st.lists(st.sampled_from(["", "  ", "# note", "  # why"]), min_size=4, max_size=4),
    st.integers(0, 3),
)
def test_trailing_comments_and_blank_lines_never_matter(comments, blank_lines):
    lines = KERNEL.strip().split("\n")
    decorated = [line + comments[index % 4] for index, line in enumerate(lines)]
    restyled = "\n" * blank_lines + "\n".join(decorated) + "\n" * blank_lines
    assert normalized_hash(restyled) == normalized_hash(KERNEL)


def test_absurdly_deep_code_still_gets_a_key():
    deep = "x = " + "a." * 50_000 + "b"
    assert normalized_hash(deep) == normalized_hash(deep + "   \n")
