"""SFT packing fills a row up to exactly seq_len: a conversation that ends on the row's last position joins it.

A mutation audit (session 13) made a row refuse a conversation that would fill it exactly (`>=` for `>`)
and the suite stayed green: its packing test leaves two positions of slack. Such a row then went out half
empty, its rest EOS padding (computed, never trained).
"""

from __future__ import annotations

from steel.sft.data import IGNORE, make_rows


def test_a_conversation_that_fills_the_row_exactly_is_packed_into_it():
    a = ([11, 12, 13], [IGNORE, 12, 13])
    b = ([21, 22, 23, 24, 25], [IGNORE, IGNORE, 23, 24, 25])
    c = ([31, 32], [IGNORE, 32])
    ids, labels = make_rows([a, b, c], seq_len=8, packing=True, pad_id=0)
    # By hand: 3 + 5 = 8 fills row 0 exactly; c starts row 1 and EOS padding (no loss) fills its rest.
    assert ids.tolist() == [[11, 12, 13, 21, 22, 23, 24, 25], [31, 32, 0, 0, 0, 0, 0, 0]]
    assert labels.tolist() == [[IGNORE, 12, 13, IGNORE, IGNORE, 23, 24, 25], [IGNORE, 32] + [IGNORE] * 6]
