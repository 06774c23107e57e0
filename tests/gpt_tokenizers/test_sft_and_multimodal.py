"""SFTTokenizer prompt formats and target masking; MultimodalTokenizer's requirements and formats."""

from __future__ import annotations

import os

import numpy as np
import pytest
from gpt_tokenizers import (
    MultimodalOptions,
    SFTPromptConfig,
    TokenizerError,
    TokenizerFlags,
    build_tokenizer,
)
from gpt_tokenizers.chat import IGNORE_INDEX
from tokenizers import Tokenizer

CONVERSATION = [
    {"role": "system", "content": " Be brief. "},
    {"role": "user", "content": " hi there /think "},
    {"role": "assistant", "content": " hello! "},
    {"role": "user", "content": "bye"},
    {"role": "assistant", "content": "ok then"},
]


def _sft(hf_dir: str, prompt_format: str):
    return build_tokenizer(
        TokenizerFlags(tokenizer_type="SFTTokenizer", tokenizer_model=hf_dir),
        sft_prompt=SFTPromptConfig(sft_tokenizer_prompt_format=prompt_format),
    )


@pytest.fixture(scope="module")
def raw(hf_dir) -> Tokenizer:
    return Tokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))


def _ids(raw: Tokenizer, text: str) -> list[int]:
    return raw.encode(text, add_special_tokens=False).ids


def _expected_target(raw: Tokenizer, turns: list[tuple[str, str]], prefix: int) -> list[int]:
    out: list[int] = []
    for role, text in turns:
        ids = _ids(raw, text)
        if role == "assistant":
            out += [IGNORE_INDEX] * min(prefix, len(ids)) + ids[prefix:]
        else:
            out += [IGNORE_INDEX] * len(ids)
    return out


def test_nemotron_h_aligned_renders_and_masks_all_but_assistant_text(hf_dir, raw):
    tok = _sft(hf_dir, "nemotron-h-aligned")
    turns = [
        ("system", "<SPECIAL_10>System\nBe brief.\n"),
        ("user", "<SPECIAL_11>User\nhi there /think\n<SPECIAL_11>Assistant\n"),
        ("assistant", "hello!\n"),
        ("user", "<SPECIAL_11>User\nbye\n<SPECIAL_11>Assistant\n"),
        ("assistant", "ok then\n"),
    ]
    tokens, target = tok.tokenize_conversation(
        CONVERSATION, return_target=True, add_generation_prompt=False
    )
    assert tokens.tolist() == _ids(raw, "".join(t for _, t in turns))
    assert target.tolist() == _expected_target(raw, turns, prefix=0)
    assert tok.force_eod
    assert tok.pad == raw.token_to_id("<unk>")  # <SPECIAL_233> is absent, so it maps to unk


def test_nemotron_nano_v2_drops_think_switches_and_masks_the_assistant_header(hf_dir, raw):
    tok = _sft(hf_dir, "nemotron-nano-v2")
    turns = [
        ("system", "<SPECIAL_10>System\nBe brief.\n"),
        ("user", "<SPECIAL_11>User\nhi there\n"),
        ("assistant", "<SPECIAL_11>Assistant\nhello!\n<SPECIAL_12>\n"),
        ("user", "<SPECIAL_11>User\nbye\n"),
        ("assistant", "<SPECIAL_11>Assistant\nok then\n<SPECIAL_12>\n"),
    ]
    tokens, target = tok.tokenize_conversation(
        CONVERSATION, return_target=True, add_generation_prompt=False
    )
    assert tokens.tolist() == _ids(raw, "".join(t for _, t in turns))
    assert target.tolist() == _expected_target(raw, turns, prefix=3)
    assert tok.pad == raw.token_to_id("<unk>") and not tok.force_eod


def test_identity_concatenates_contents(hf_dir, raw):
    tok = _sft(hf_dir, "identity")
    tokens, target = tok.tokenize_conversation(CONVERSATION[1:3], True, False)
    assert tokens.tolist() == _ids(raw, " hi there /think  hello! ")
    assert target.tolist() == _expected_target(
        raw, [("user", " hi there /think "), ("assistant", " hello! ")], prefix=0
    )


def test_default_format_renders_the_tokenizers_chat_template_like_transformers(hf_dir, raw):
    from transformers import AutoTokenizer

    ref = AutoTokenizer.from_pretrained(hf_dir)
    tok = _sft(hf_dir, "default")
    rendered = ref.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    tokens = tok.tokenize_conversation(
        CONVERSATION, return_target=False, add_generation_prompt=True
    )
    assert tokens.tolist() == ref(rendered, add_special_tokens=False).input_ids
    tokens, target = tok.tokenize_conversation(CONVERSATION, True, False)
    np.testing.assert_array_equal(tokens, target)  # the default format trains on every token
    assert (
        tok.tokenize(CONVERSATION) == tok.tokenize_conversation(CONVERSATION, False, True).tolist()
    )
    assert tok.pad == raw.token_to_id("<pad>")


def test_plain_text_gets_the_tokenizers_special_tokens_and_ids_are_the_hf_ones(hf_dir, raw):
    tok = _sft(hf_dir, "nemotron-h-aligned")
    assert tok.tokenize("hello world") == raw.encode("hello world").ids
    assert tok.detokenize(_ids(raw, "hello world")) == "hello world"
    assert (tok.eod, tok.eos, tok.bos) == (raw.token_to_id("</s>"),) * 2 + (raw.token_to_id("<s>"),)
    assert tok.vocab_size == raw.get_vocab_size(with_added_tokens=True)
    assert tok.unique_identifiers == {
        "class": "SFTTokenizer",
        "tokenizer_path": [hf_dir],
        "prompt_format": "nemotron-h-aligned",
    }


def test_malformed_conversations_and_formats_are_errors(hf_dir):
    tok = _sft(hf_dir, "nemotron-h-aligned")
    with pytest.raises(TokenizerError, match="empty assistant turn"):
        tok.tokenize_conversation(
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}], True, False
        )
    with pytest.raises(TokenizerError, match="must follow a user or tool turn"):
        tok.tokenize_conversation(
            [{"role": "system", "content": "a"}, {"role": "assistant", "content": "b"}], True, False
        )
    with pytest.raises(
        TokenizerError, match="^--sft-tokenizer-prompt-format: unknown format 'chatml'"
    ):
        _sft(hf_dir, "chatml")


def _mm(hf_dir: str, prompt_format: str | None, image_tag_type: str = "nvlm"):
    options = None
    if prompt_format is not None:
        options = MultimodalOptions(
            tokenizer_prompt_format=prompt_format, image_tag_type=image_tag_type
        )
    return build_tokenizer(
        TokenizerFlags(tokenizer_type="MultimodalTokenizer", tokenizer_model=hf_dir),
        multimodal=options,
    )


def test_multimodal_without_its_flags_stops_naming_what_it_needs(hf_dir):
    with pytest.raises(TokenizerError, match="needs a prompt format.*--tokenizer-prompt-format"):
        _mm(hf_dir, None)


def test_multimodal_qwen_format_tags_images_and_masks_prompts(hf_dir, raw):
    tok = _mm(hf_dir, "qwen2p0")
    size = raw.get_vocab_size(with_added_tokens=True)
    assert tok.vocab_size == size  # counted before the image token is added, as the original
    assert tok.convert_tokens_to_ids("<image>") == size
    expected = raw.encode("look <Image>").ids + [size] + _ids(raw, "</Image>")
    assert tok.tokenize("look <image>") == expected
    conv = [{"role": "user", "content": "<image> what?"}, {"role": "assistant", "content": "a cat"}]
    turns = [
        ("user", "<|im_start|>user\n<Image><image></Image> what?<|im_end|>\n"),
        ("assistant", "<|im_start|>assistant\na cat<|im_end|>\n"),
    ]
    tokens, target = tok.tokenize_conversation(conv, True, False)
    assert (
        tokens.tolist()
        == tok._tokenizer.encode("".join(t for _, t in turns), add_special_tokens=False).ids
    )
    n_user = len(tok._tokenizer.encode(turns[0][1], add_special_tokens=False).ids)
    assert (target[:n_user] == IGNORE_INDEX).all() and (
        target[n_user : n_user + 3] == IGNORE_INDEX
    ).all()
    assert (target[n_user + 3 :] == tokens[n_user + 3 :]).all()
    assert (tok.pad, tok.eod) == (raw.token_to_id("<pad>"), raw.token_to_id("</s>"))


def test_multimodal_mistral_drops_system_and_keeps_one_bos(hf_dir, raw):
    tok = _mm(hf_dir, "mistral", image_tag_type="")
    conv = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "more"},
        {"role": "assistant", "content": "sure"},
    ]
    tokens, target = tok.tokenize_conversation(conv, True, False)
    text = "<s>[INST] hi[/INST] yo</s>[INST] more[/INST] sure</s>"
    assert tokens.tolist() == _ids(raw, text)
    masked = [len(_ids(raw, "<s>[INST] hi[/INST]")), len(_ids(raw, "[INST] more[/INST]"))]
    assert int((target == IGNORE_INDEX).sum()) == sum(masked)
