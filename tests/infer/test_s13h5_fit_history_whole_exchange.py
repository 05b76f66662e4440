"""`steel chat` drops the oldest exchange whole (user turn and its reply), never half of one.

A mutation audit (session 13) dropped one message at a time and the suite stayed green: its test's history
fits only once both turns are gone, where both agree. Dropping the user turn alone can leave a history that
fits with an orphan assistant reply right after the system prompt, answering a question the model never sees.
"""

from __future__ import annotations

from transformers import AutoTokenizer

from steel.infer.chat import fit_history
from steel.infer.generate import chat_prompt_ids


def test_fit_history_never_keeps_a_reply_without_its_question(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    sys_msg = {"role": "system", "content": "s"}
    u1, a1 = {"role": "user", "content": "a" * 40}, {"role": "assistant", "content": "b" * 3}
    u2, a2, u3 = {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}
    # The budget fits the history less u1 alone, not the whole one: only the whole first exchange may go.
    budget = len(chat_prompt_ids(tok, [sys_msg, a1, u2, a2, u3]))
    assert len(chat_prompt_ids(tok, [sys_msg, u1, a1, u2, a2, u3])) > budget
    kept, ids = fit_history(tok, [sys_msg, u1, a1, u2, a2, u3], budget)
    assert kept == [sys_msg, u2, a2, u3]
    assert ids == chat_prompt_ids(tok, kept)
