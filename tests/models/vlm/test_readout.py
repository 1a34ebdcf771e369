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


def _consumed(pieces):
    """How many tokens the number reader takes: the index of the token that ends the number."""
    from procvlm.models.vlm.readout import _number_positions

    ints, fracs, _ = _number_positions(pieces, 0)
    if not ints:
        return 0
    dot = len(ints) < len(pieces) and pieces[len(ints)] == "."
    return len(ints) + dot + len(fracs)


class PieceTokenizer:
    """A tokenizer whose token i decodes to ``pieces[i]``."""

    def __init__(self, pieces):
        self.pieces = pieces

    def __len__(self):
        return len(self.pieces)

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)

    def batch_decode(self, rows):
        return [self.decode(r) for r in rows]


def test_number_token_kinds(tok):
    from procvlm.models.vlm.readout import DIGIT, DOT, OTHER, number_token_kinds

    kinds = number_token_kinds(tok)
    assert kinds.shape == (len(tok),)
    assert [int(kinds[i]) for i in digit_token_ids(tok)] == [DIGIT] * 10
    assert int(kinds[tok.convert_tokens_to_ids(".")]) == DOT
    assert int(kinds[tok.convert_tokens_to_ids("%")]) == OTHER


def test_number_end_stops_each_row_where_the_reader_stops():
    """On random token rows, NumberEnd marks a row finished exactly at the first token the
    number reader does not take (and no earlier), whatever else is in the batch."""
    from procvlm.models.vlm.readout import NumberEnd, number_token_kinds

    pieces = [str(d) for d in range(10)] + [".", "%", "</progress>", " 4", "x", " ."]
    fake = PieceTokenizer(pieces)
    kinds = number_token_kinds(fake)
    ids = {p: i for i, p in enumerate(pieces)}
    rng = np.random.default_rng(0)
    # digits and dots drawn often enough that many rows hold a number of some length
    weights = np.array([3.0] * 10 + [6.0, 2.0, 1.0, 2.0, 1.0, 1.0])
    rows = [[pieces[k] for k in rng.choice(len(pieces), size=8, p=weights / weights.sum())]
            for _ in range(300)]
    rows += [list("42.17%xx"), list("7.25%xxx"), [" 4", "2", "%"] + ["x"] * 5,
             ["x"] * 8, list("12345678")]
    prompt = torch.full((len(rows), 5), ids["x"])
    stop = NumberEnd(kinds)
    ended = [None] * len(rows)
    for step in range(8):
        new = torch.tensor([[ids[p] for p in row[:step + 1]] for row in rows])
        done = stop(torch.cat([prompt, new], 1), torch.zeros(len(rows), 3)).tolist()
        for b, d in enumerate(done):
            assert d or ended[b] is None  # once finished, a row stays finished
            if d and ended[b] is None:
                ended[b] = step
    for row, end in zip(rows, ended):
        want = _consumed(row)
        assert end == (want if want < len(row) else None), row
    assert ended[-5:] == [5, 4, 2, 0, None]
    assert len({e for e in ended}) >= 6  # rows end at many different steps


@pytest.mark.slow
def test_readout_stops_after_the_number_and_reads_the_same(fixed_run, monkeypatch):
    """The trained model writes 50.00%</progress>: the readout generates the five tokens of the
    number and the one after it ("%</" in this tokenizer), not MAX_NUMBER_TOKENS, and reads the
    same value as without the stopping criterion."""
    from procvlm.models.vlm import modeling_vlm
    from procvlm.models.vlm.modeling_vlm import VLMProgressModel
    from procvlm.models.vlm.readout import MAX_NUMBER_TOKENS

    frames = np.random.default_rng(2).integers(0, 255, (4, 32, 32, 3), np.uint8)
    model = VLMProgressModel.from_pretrained(fixed_run, readout="probs", batch_size=4,
                                             max_new_tokens=48)
    answer = model.predict(frames[:1], task="place the puck onto the goal").text[0]
    assert answer.split("<progress>")[1].startswith("50.00%</progress>")
    prefix = answer.split("<progress>")[0] + "<progress>"
    lengths = []
    generate = model.model.generate

    def counted(**kwargs):
        out = generate(**kwargs)
        lengths.append(out.sequences.shape[1] - kwargs["input_ids"].shape[1])
        return out

    model.model.generate = counted
    args = ([[f] for f in frames], ["place the puck onto the goal"] * 4, [prefix] * 4)
    stopped = model.progress_after_prefix(*args)

    class Never:
        def __init__(self, *a):
            pass

        def __call__(self, input_ids, scores, **kw):
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    monkeypatch.setattr(modeling_vlm, "NumberEnd", Never)
    full = model.progress_after_prefix(*args)
    assert lengths == [6, MAX_NUMBER_TOKENS]
    assert stopped == pytest.approx(full, abs=1e-9) and None not in stopped
    assert stopped == pytest.approx([FIXED] * 4, abs=0.02)
