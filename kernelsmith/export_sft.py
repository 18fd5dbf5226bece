"""SFT records: one chat per kept step, in the messages format OpenAI fine-tuning and TRL's SFTTrainer read.

    {"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}],
     "metadata": {"task": ..., "category": ..., "gain": ..., ...}}
"""

from __future__ import annotations

from typing import Any

from kernelsmith.export import Step
from kernelsmith.export_prompts import step_prompt, step_reply


def sft_record(step: Step) -> dict[str, Any]:
    """The step as a chat: the prompt that produced the child, and the child as the reply the loop
    parses. Raises UnwritableReply when the child cannot be written as such a reply."""
    prompt = step_prompt(step)
    reply = step_reply(step, prompt)
    return {
        "messages": [*prompt.messages, {"role": "assistant", "content": reply.text}],
        "metadata": {
            **step.metadata(),
            "prompt_source": prompt.source,
            "template": prompt.template,
            "reply_format": reply.format,
        },
    }
