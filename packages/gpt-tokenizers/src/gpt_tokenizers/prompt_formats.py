"""Chat prompt formats as callables: (messages, add_generation_prompt) -> prompt text.

Each one writes exactly the text the original's chat template renders for that format, so
SFT and multimodal tokenization need no template engine; they are module-level functions or
small frozen classes so tokenizers holding them still pickle (DataLoader workers). Formats that use the tokenizer's
own chat template (SFT 'default', multimodal 'chatml' and 'llama3') render it with jinja2 the
way transformers does (sandboxed, trim_blocks, lstrip_blocks).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import TokenizerError

Message = Mapping[str, Any]
Renderer = Callable[[Sequence[Message], bool], str]


def _content(message: Message) -> str:
    content = message.get("content")
    if not isinstance(content, str):
        raise TokenizerError(f"message content must be a string, got {type(content).__name__}")
    return content


def _role(message: Message) -> str:
    return str(message.get("role"))


def _render_by_role(messages: Sequence[Message], turns: Mapping[str, Callable[[str], str]]) -> str:
    """Each message's content through its role's formatter; other roles are left out."""
    out = []
    for m in messages:
        role, text = _role(m), _content(m)  # every content is checked, rendered or not
        if role in turns:
            out.append(turns[role](text))
    return "".join(out)


_NEMOTRON_H_ALIGNED_TURNS: dict[str, Callable[[str], str]] = {
    "system": lambda text: f"<SPECIAL_10>System\n{text.strip()}\n",
    "user": lambda text: f"<SPECIAL_11>User\n{text.strip()}\n<SPECIAL_11>Assistant\n",
    "assistant": lambda text: f"{text.strip()}\n",
}


def render_nemotron_h_aligned(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    """System and user turns with <SPECIAL_10>/<SPECIAL_11> headers; the user turn opens the
    assistant header, so an assistant turn is just its stripped text and a newline."""
    return _render_by_role(messages, _NEMOTRON_H_ALIGNED_TURNS)


def _drop_think_switches(text: str) -> str:
    return text.replace("/think", "").replace("/no_think", "").strip()


_NEMOTRON_NANO_V2_TURNS: dict[str, Callable[[str], str]] = {
    "system": lambda text: f"<SPECIAL_10>System\n{_drop_think_switches(text)}\n",
    "user": lambda text: f"<SPECIAL_11>User\n{_drop_think_switches(text)}\n",
    "assistant": lambda text: f"<SPECIAL_11>Assistant\n{text.strip()}\n<SPECIAL_12>\n",
}


def render_nemotron_nano_v2(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    """Nemotron Nano v2: /think and /no_think switches are removed from system and user text;
    an assistant turn carries its own header and ends with <SPECIAL_12>."""
    return _render_by_role(messages, _NEMOTRON_NANO_V2_TURNS)


def render_identity(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    """The contents concatenated as they are, with no markup."""
    return "".join(_content(m) for m in messages)


@dataclass(frozen=True)
class MistralRenderer:
    """Mistral [INST] format: bos, '[INST] user[/INST]', ' assistant' + eos; no system role."""

    bos: str
    eos: str

    def __call__(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        out = [self.bos]
        for m in messages:
            if _role(m) == "user":
                out.append(f"[INST] {_content(m)}[/INST]")
            elif _role(m) == "assistant":
                out.append(f" {_content(m)}{self.eos}")
        if add_generation_prompt:
            out.append(" ")
        return "".join(out)


@dataclass(frozen=True)
class ImRenderer:
    """ChatML-style turns '<|im_start|>role\\ncontent<|im_end|>\\n' (qwen2p0/2p5; nvlm-yi-34b adds bos)."""

    bos: str = ""

    def __call__(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        out = [self.bos]
        for m in messages:
            out.append(f"<|im_start|>{_role(m)}\n{_content(m)}<|im_end|>\n")
        if add_generation_prompt:
            out.append("<|im_start|>assistant\n")
        return "".join(out)


def _llama3_header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


@dataclass(frozen=True)
class Llama3p1Renderer:
    """Llama 3.1 headers without the forced system message; tool results become ipython turns."""

    bos: str

    def __call__(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        out = [self.bos]
        messages = list(messages)
        if messages and _role(messages[0]) == "system":
            out.append(_llama3_header("system") + _content(messages[0]).strip() + "<|eot_id|>")
            messages = messages[1:]
        for m in messages:
            if "tool_calls" in m:
                raise TokenizerError("prompt format llama3p1 does not render tool calls")
            if _role(m) in ("tool", "ipython"):
                payload = json.dumps(m.get("content"), ensure_ascii=False)
                out.append(_llama3_header("ipython") + payload + "<|eot_id|>")
            else:
                out.append(_llama3_header(_role(m)) + _content(m).strip() + "<|eot_id|>")
        if add_generation_prompt:
            out.append(_llama3_header("assistant"))
        return "".join(out)


def _raise_exception(message: str) -> None:
    raise TokenizerError(f"chat template: {message}")


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **kw: Any) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, **kw)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class JinjaRenderer:
    """A tokenizer's own chat template, rendered as transformers' apply_chat_template does.

    The template is compiled on construction (so a bad one fails at build time) and again
    after unpickling, since compiled templates do not pickle.
    """

    def __init__(
        self, template: str | None, special_tokens: Mapping[str, str | None], what: str
    ) -> None:
        if template is None:
            raise TokenizerError(
                f"{what} needs a chat template in the tokenizer's files (none found)"
            )
        self.template = template
        self.special_tokens = {k: v for k, v in special_tokens.items() if v is not None}
        self.what = what
        self._compiled = self._compile()

    def _compile(self):
        try:
            import jinja2
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError as e:
            raise TokenizerError(
                f"{self.what} renders the tokenizer's chat template and needs jinja2: "
                "pip install jinja2"
            ) from e
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            return env.from_string(self.template)
        except jinja2.TemplateError as e:
            raise TokenizerError(
                f"{self.what}: the tokenizer's chat template does not parse: {e}"
            ) from e

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_compiled"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._compiled = self._compile()

    def __call__(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        return self._compiled.render(
            messages=[dict(m) for m in messages],
            tools=None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **self.special_tokens,
        )
