import numpy as np
import pytest
import torch

from procvlm.errors import ProcvlmError
from procvlm.models.vlm.readout import (DoneProbe, digit_token_ids, done_branch, expected_number,
                                       tag_expectation)
from procvlm.models.vlm.tiny import QWEN_SPECIALS, train_tokenizer
FIXED = 0.5  # the progress the fixed_run fixture was trained on


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(QWEN_SPECIALS)


def test_expectation_mixes_digits(tok):
    ids = digit_token_ids(tok)
    text = "is <progress>42.50%</progress>"
    tokens = tok.encode(text, add_special_tokens=False)
    logits = torch.full((len(tokens), len(tok)), -30.0)
    for i, t in enumerate(tokens):
        logits[i, t] = 10.0
    pos4 = tok.convert_ids_to_tokens(tokens).index("4")
    logits[pos4, ids[3]] = 10.0  # 50/50 between 3 and 4 in the tens place
    value = tag_expectation(tokens, logits, tok, ids)
    assert value == pytest.approx(0.3750, abs=1e-4)


def test_expected_number_places():
    logits = torch.full((5, 10), -50.0)
    for pos, d in enumerate([1, 2, 7, 5]):
        logits[pos, d] = 50.0
    assert expected_number(logits, [0, 1], [2, 3], list(range(10))) == pytest.approx(12.75)


def test_no_tag_reads_none(tok):
    tokens = tok.encode("no number here", add_special_tokens=False)
    assert tag_expectation(tokens, torch.zeros(len(tokens), len(tok)), tok,
                           digit_token_ids(tok)) is None


class TwoTokens:
    """A tokenizer that encodes any text as the same two tokens."""

    def encode(self, text, add_special_tokens=False):
        return [1, 2]


def test_merged_digits_are_refused():
    with pytest.raises(ProcvlmError, match="one token per digit"):
        digit_token_ids(TwoTokens())


@pytest.mark.slow
def test_readout_agrees_with_text_on_fixed_model(fixed_run):
    from procvlm.models.vlm.modeling_vlm import VLMProgressModel

    frames = np.random.default_rng(1).integers(0, 255, (3, 32, 32, 3), np.uint8)
    text_model = VLMProgressModel.from_pretrained(fixed_run, max_new_tokens=48)
    by_text = text_model.predict(frames, task="place the puck onto the goal", window=2)
    assert by_text.flags == ["ok"] * 3
    np.testing.assert_allclose(by_text.progress, FIXED, atol=1e-4)
    probs = VLMProgressModel.from_pretrained(fixed_run, max_new_tokens=48, readout="probs")
    by_probs = probs.predict(frames, task="place the puck onto the goal", window=2)
    np.testing.assert_allclose(by_probs.progress, FIXED, atol=0.02)
    prefix = by_text.text[0].split("<progress>")[0] + "<progress>"
    forced = probs.progress_after_prefix([[frames[0]]], ["place the puck onto the goal"], [prefix])
    assert forced[0] == pytest.approx(FIXED, abs=0.02)


def test_batched_readout_reads_the_same_as_full_logits(tok):
    """tag_expectations copies only the digit columns off the device: the same values as
    tag_expectation on the whole vocabulary's logits."""
    from procvlm.models.vlm.readout import tag_expectations

    ids = digit_token_ids(tok)
    rows = [tok.encode("done <progress>42.50%</progress>", add_special_tokens=False),
            tok.encode("<progress>7.25%</progress> and", add_special_tokens=False),
            tok.encode("no number here at all, sorry", add_special_tokens=False)]
    n = max(len(r) for r in rows)
    seq = torch.tensor([r + [r[-1]] * (n - len(r)) for r in rows])
    logits = torch.randn(len(rows), n, len(tok), generator=torch.Generator().manual_seed(0))
    got = tag_expectations(seq, list(logits.unbind(1)), tok)
    want = [tag_expectation(seq[b].tolist(), logits[b], tok, ids) for b in range(len(rows))]
    assert got == pytest.approx(want) and got[2] is None and got[0] is not None


def test_done_branch_is_where_finished_and_unfinished_answers_part(tok):
    from procvlm.models.vlm.processor_vlm import progress_answer

    shared, done_id, todo_id = done_branch(tok)
    finished = tok.encode(progress_answer([], 1.0), add_special_tokens=False)
    going = tok.encode(progress_answer(["Grasp the puck"], 0.3), add_special_tokens=False)
    k = len(shared)
    assert k >= 1 and finished[:k] == going[:k] == shared
    assert (finished[k], going[k]) == (done_id, todo_id) and done_id != todo_id


def test_done_probe_reads_the_branch_step_and_checks_the_opening():
    branch = ([7], 3, 4)                       # answers open with token 7, then 3 or 4
    probe = DoneProbe(branch, prompt_len=5)
    scores = torch.zeros(3, 10)
    scores[:, 3] = torch.tensor([2.0, 0.0, -1.0])
    assert probe(torch.zeros(3, 5, dtype=torch.long), scores) is scores
    assert probe.p is None                     # the first answer token: not the branch yet
    probe(torch.zeros(3, 6, dtype=torch.long), scores)
    probe(torch.zeros(3, 7, dtype=torch.long), scores * 0)    # later steps change nothing
    new = torch.tensor([[7, 3, 1], [7, 4, 1], [8, 3, 1]])
    got = probe.read(new)
    assert got[0] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert got[1] == pytest.approx(0.5) and got[2] is None   # row 2 opened with another token
    assert DoneProbe(branch, 5).read(new) == [None] * 3        # the branch step never came


def test_done_branch_needs_a_parting_token():
    with pytest.raises(ProcvlmError, match="no token where they part"):
        done_branch(TwoTokens())
