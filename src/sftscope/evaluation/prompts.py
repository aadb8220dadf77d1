"""Few-shot prompts as lm-evaluation-harness 0.4 builds them (`ConfigurableTask.fewshot_context`), plain or chat.

A prompt is an optional description (lm-eval's system message), k solved examples and the question. Plain text:
    description + (example_question + target_delimiter + example_answer + fewshot_delimiter) * k + question
With a chat template (lm-eval's `apply_chat_template=True`): the description is a system message; with
`fewshot_as_multiturn` (lm-eval's default) each example is a user turn and an assistant turn and the question the
last user turn, else everything but the description is one user message (the plain text above); the conversation
is rendered with the generation prompt (a template that rejects the system role gets the conversation without
it, as lm-eval retries). The string then goes through `sftscope.tokenization` like any text.
"""

from __future__ import annotations

from sftscope.tokenization import render_chat


def fewshot_prompt(question: str, examples: list[tuple[str, str]], *, description: str = "",
                   target_delimiter: str = " ", fewshot_delimiter: str = "\n\n", tokenizer=None,
                   chat_template: bool = False, fewshot_as_multiturn: bool = True) -> str:
    """The prompt string of one item (see the module docstring); examples are (question, answer) pairs.

    Raises:
        SftscopeError: chat_template is set and the tokenizer has no chat template.
    """
    if not chat_template:
        shots = "".join(f"{q}{target_delimiter}{a}{fewshot_delimiter}" for q, a in examples)
        return description + shots + question
    messages = [{"role": "system", "content": description}] if description else []
    if fewshot_as_multiturn:
        for q, a in examples:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": question})
    else:
        shots = "".join(f"{q}{target_delimiter}{a}{fewshot_delimiter}" for q, a in examples)
        messages.append({"role": "user", "content": shots + question})
    import jinja2

    try:
        return render_chat(tokenizer, messages, add_generation_prompt=True)
    except jinja2.exceptions.TemplateError:
        # lm-eval's HFLM.apply_chat_template: a template that rejects the system role is retried without it
        return render_chat(tokenizer, [m for m in messages if m["role"] != "system"], add_generation_prompt=True)
