"""Reply parsing: fenced programs, SEARCH/REPLACE diffs, and the reasons a reply is unusable."""

from __future__ import annotations

import pytest

from kernelsmith.replies import ReplyError, apply_diff, extract_program, parse_diff, parse_diff_reply

PARENT = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, tl.maximum(x, 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
        return out
'''


def _diff(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


def test_the_block_defining_modelnew_is_chosen_among_several():
    reply = (
        "First the kernel alone:\n```python\n@triton.jit\ndef k(x): pass\n```\n"
        "Then the program:\n```python\nimport torch\nclass ModelNew(torch.nn.Module):\n    pass\n```\n"
        "Usage:\n```python\nModelNew()(x)\n```\n"
    )
    assert extract_program(reply) == "import torch\nclass ModelNew(torch.nn.Module):\n    pass\n"


def test_an_unfenced_program_and_a_truncated_fence_are_still_read():
    assert "class ModelNew" in extract_program(PARENT)
    assert extract_program("Here:\n```py\n" + PARENT).startswith("import torch")


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("I would use a larger block size.", "the reply has no ```python code block"),
        ("```python\nclass ModelNew(nn.Module):\n    def forward(self, x)\n        return x\n```",
         "the code block does not parse: line 2: expected ':': `def forward(self, x)`"),
        ("```python\nimport torch\nclass Model(torch.nn.Module):\n    pass\n```",
         "the code block defines no class ModelNew at module level"),
        ("```cuda\n__global__ void k() {}\n```", "the reply has no ```python code block"),
        # a lone surrogate (JSON lets one through) makes the parser raise UnicodeEncodeError
        ("```python\nclass ModelNew:\n    s = '\ud800'\n```",
         "the code block does not parse: UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800' in "
         "position 25: surrogates not allowed"),
    ],
)
def test_an_unusable_reply_says_why(reply, reason):
    with pytest.raises(ReplyError) as caught:
        extract_program(reply)
    assert str(caught.value) == reason


def test_a_diff_applies_and_keeps_the_rest_of_the_parent():
    reply = "Bigger blocks.\n```\n" + _diff(
        "        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)",
        "        relu_kernel[(triton.cdiv(n, 2048),)](x, out, n, BLOCK=2048, num_warps=8)",
    ) + "\n```\n"
    child, description = parse_diff_reply(PARENT, reply)
    assert child == PARENT.replace("1024),)](x, out, n, BLOCK=1024)", "2048),)](x, out, n, BLOCK=2048, num_warps=8)")
    assert description == "1 SEARCH/REPLACE block applied"


def test_a_dedented_search_with_trailing_spaces_still_applies_at_the_right_depth():
    reply = _diff(
        "out = torch.empty_like(x)   \nn = x.numel()",
        "out = torch.empty_like(x)\nn = x.numel()\nassert x.is_contiguous()",
    )
    child = apply_diff(PARENT, parse_diff(reply))
    assert "        n = x.numel()\n        assert x.is_contiguous()\n        relu_kernel" in child


def test_several_blocks_apply_in_order_each_to_the_result_of_the_last():
    reply = "\n".join([
        _diff("    x = tl.load(x_ptr + offs, mask=mask)", "    x = tl.load(x_ptr + offs, mask=mask, other=0.0)"),
        _diff("    x = tl.load(x_ptr + offs, mask=mask, other=0.0)", "    x = tl.load(x_ptr + offs, mask=mask, other=1.0)"),
    ])
    child = apply_diff(PARENT, parse_diff(reply))
    assert "other=1.0" in child and "other=0.0" not in child


def test_a_block_that_does_not_apply_fails_the_diff_naming_the_block_and_the_closest_line():
    reply = "\n".join([
        _diff("    mask = offs < n", "    mask = offs < n  # tail"),
        _diff("        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK_SIZE=1024)", "        pass"),
    ])
    with pytest.raises(ReplyError) as caught:
        apply_diff(PARENT, parse_diff(reply))
    message = str(caught.value)
    assert message.startswith("diff block 2 of 2 does not apply: SEARCH line 1 ")
    assert "closest parent line is 19 `relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)`" in message


def test_a_partly_matching_search_says_where_it_diverges():
    reply = _diff("    out = torch.empty_like(x)\n    n = x.shape[0]", "    pass")
    with pytest.raises(ReplyError, match=r"SEARCH line 1 matches parent line 17, but SEARCH line 2 "
                                         r"`n = x.shape\[0\]` differs from parent line 18 `n = x.numel\(\)`"):
        apply_diff(PARENT, parse_diff(reply))


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("<<<<<<< SEARCH\n    mask = offs < n\n>>>>>>> REPLACE", "diff block 1 (reply line 1) has no '=======' after"),
        ("<<<<<<< SEARCH\n    mask = offs < n\n=======\n    mask = offs <= n\n", "is not closed by '>>>>>>> REPLACE'"),
        (_diff("", "import math"), "diff block 1 of 1 has an empty SEARCH text"),
        (_diff("    mask = offs < n", "    mask = offs < n"), "the diff changes nothing"),
        (_diff("class ModelNew(nn.Module):", "class Faster(nn.Module):"),
         "the code after applying the diff defines no class ModelNew"),
        (_diff("    mask = offs < n", "    mask = (offs < n"), "the code after applying the diff does not parse: line 10"),
        ("Just make it faster.", "the reply has no SEARCH/REPLACE blocks, and no full program either"),
    ],
)
def test_a_broken_diff_is_an_error_never_silently_dropped(reply, reason):
    with pytest.raises(ReplyError) as caught:
        parse_diff_reply(PARENT, reply)
    assert reason in str(caught.value)


def test_a_diff_reply_holding_a_whole_program_is_used_as_a_rewrite():
    rewritten = PARENT.replace("BLOCK=1024", "BLOCK=1024, num_warps=2")
    child, description = parse_diff_reply(PARENT, f"Full version:\n```python\n{rewritten}```")
    assert child == rewritten and "used as a rewrite" in description
