"""Progress from token probabilities instead of sampled text.

Inside ``<progress>XX.XX%</progress>`` every digit is one token (Qwen, SmolLM and the tiny
test tokenizers split numbers digit by digit). At each digit position the model gives a
distribution over the ten digits; the expected number is ``sum_k E[d_k] * 10^(place_k)``. This is
smoother than the greedy digits (0.4 probability on "3" and 0.6 on "4" reads 3.6, not 4) and
needs no sampling. The number of integer digits is the greedy one (``5.00`` vs ``42.00`` vs
``100.00``); at each position the distribution is renormalised over the digit tokens.

:func:`tag_expectations` reads the number out of a generated batch with its logits
(``generate(..., output_logits=True)``). The model splits it in two so that only the device work
runs on the main thread: :func:`digit_columns` copies the ten digit columns off the device, and
:func:`read_expectations` reads them on a CPU worker. For a teacher-forced readout the prompt
ends with the answer up to ``<progress>``, at most ``MAX_NUMBER_TOKENS`` are generated, and the
number is read with ``after_tag=True``; :class:`NumberEnd` ends each row's generation at the
first token that cannot continue the number (a "%" or the closing tag), two decoding steps
before ``MAX_NUMBER_TOKENS`` for a two-digit percentage, with the same value read.

The model's probability that the task is finished is read the same way, from the token where
the two kinds of reasoning part ("The task has been completed ..." and "The following actions
are required ...") first differ: :func:`done_branch` finds that token, :class:`DoneProbe`
records the two candidates' probabilities at that step of a generated batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from procvlm.errors import ProcvlmError
from procvlm.models.vlm.processor_vlm import FINISHED_REASONING, TAG, reasoning_text

MAX_NUMBER_TOKENS = 8  # "100.00%" and one spare


def digit_token_ids(tokenizer) -> list[int]:
    """The token id of each digit 0-9.

    Raises:
        ProcvlmError: when a digit is not a single token of its own.
    """
    ids = []
    for d in range(10):
        enc = tokenizer.encode(str(d), add_special_tokens=False)
        if len(enc) != 1:
            raise ProcvlmError(f"the tokenizer splits digit {d} into {enc}: the probability "
                               "readout needs one token per digit; use readout='text'")
        ids.append(int(enc[0]))
    return ids


def _number_positions(pieces: Sequence[str], start: int) -> tuple[list[int], list[int], bool]:
    """Token positions of the integer and fraction digits from ``start``, and whether a "%"
    follows. Empty lists when the tokens there do not spell a digit-by-digit number."""
    ints: list[int] = []
    fracs: list[int] = []
    seen_dot = False
    i = start
    while i < len(pieces):
        p = pieces[i].strip() if i == start else pieces[i]
        if len(p) == 1 and p.isdigit():
            (fracs if seen_dot else ints).append(i)
        elif p == "." and not seen_dot and ints:
            seen_dot = True
        else:
            break
        i += 1
    percent = i < len(pieces) and pieces[i].lstrip().startswith("%")
    return ints, fracs, percent


def expected_number(logits: torch.Tensor, positions_int: list[int], positions_frac: list[int],
                    digit_ids: list[int]) -> float:
    """``sum_k E[d_k] 10^place`` from per-step logits (n, V) at the digit positions."""
    digits = torch.arange(10, dtype=torch.float64)
    value = 0.0
    places = [10.0 ** (len(positions_int) - 1 - k) for k in range(len(positions_int))]
    places += [10.0 ** -(j + 1) for j in range(len(positions_frac))]
    for pos, place in zip(positions_int + positions_frac, places):
        probs = torch.softmax(logits[pos, digit_ids].double(), dim=-1)
        value += place * float((probs * digits).sum())
    return value


def _to_progress(value: float, percent: bool) -> float:
    if percent or value > 1.0:
        value = value / 100.0
    return min(max(value, 0.0), 1.0)


def tag_expectation(tokens: Sequence[int], logits: torch.Tensor, tokenizer,
                    digit_ids: list[int], after_tag: bool = False,
                    pieces: Sequence[str] | None = None) -> float | None:
    """Expected progress of one generated answer, or None when it has no readable number.

    Args:
        tokens: the generated token ids (n,).
        logits: the logits that produced them (n, V), or only their digit columns (n, 10)
            with ``digit_ids=range(10)``.
        tokenizer: the model's tokenizer.
        digit_ids: the digits' columns of ``logits`` (:func:`digit_token_ids` for full logits).
        after_tag: the tokens start right after ``<progress>`` (teacher-forced prefix).
        pieces: the decoded text of each token (decoded here when not given).
    """
    if pieces is None:
        pieces = [tokenizer.decode([int(t)]) for t in tokens]
    positions = _digit_positions(pieces, after_tag)
    if positions is None:
        return None
    ints, fracs, percent = positions
    return _to_progress(expected_number(logits, ints, fracs, digit_ids), percent)


OTHER, DIGIT, DOT, SPACED_DIGIT = 0, 1, 2, 3
"""Kinds of token for :class:`NumberEnd`: a digit that :func:`_number_positions` reads only as a
number's first token is ``SPACED_DIGIT`` (whitespace around it)."""


def number_token_kinds(tokenizer) -> torch.Tensor:
    """(V,) uint8 kind of every token id of ``tokenizer`` (``OTHER``, ``DIGIT``, ``DOT``,
    ``SPACED_DIGIT``), from each token decoded alone as :func:`read_expectations` decodes it."""
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    kinds = torch.zeros(len(pieces), dtype=torch.uint8)
    for i, p in enumerate(pieces):
        if len(p) == 1 and p.isdigit():
            kinds[i] = DIGIT
        elif p == ".":
            kinds[i] = DOT
        elif len(p.strip()) == 1 and p.strip().isdigit():
            kinds[i] = SPACED_DIGIT
    return kinds


class NumberEnd:
    """A ``generate`` stopping criterion for the digit readout: a row is finished once the
    number after ``<progress>`` can go no further, the token that ends it generated (so a "%"
    after it is seen); the rows' numbers are read as without it. It follows
    :func:`_number_positions` on the device, one table lookup per step: the first token must be
    a digit (whitespace around it allowed), later ones digits or the number's one "." after
    its integer digits.

    One instance per ``generate`` call: its first call sees the first generated token.

    Args:
        kinds: :func:`number_token_kinds` of the model's tokenizer, on the model's device.
    """

    def __init__(self, kinds: torch.Tensor) -> None:
        self.kinds = kinds
        self.seen_dot: torch.Tensor | None = None
        self.done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        last = input_ids[:, -1]
        inside = last < self.kinds.shape[0]
        kind = torch.where(inside, self.kinds[last.clamp(max=self.kinds.shape[0] - 1)],
                           torch.zeros_like(last, dtype=self.kinds.dtype))
        if self.done is None:
            self.seen_dot = torch.zeros_like(last, dtype=torch.bool)
            self.done = (kind != DIGIT) & (kind != SPACED_DIGIT)
            return self.done.clone()
        dot = (kind == DOT) & ~self.seen_dot
        self.seen_dot = self.seen_dot | dot
        self.done = self.done | ~((kind == DIGIT) | dot)
        return self.done.clone()


def digit_columns(step_logits: Sequence[torch.Tensor], digit_ids: list[int]) -> torch.Tensor:
    """The ten digit columns of each generated step's logits, (B, n, 10), on their device
    (only these leave the device, not the whole vocabulary).

    Args:
        step_logits: n tensors (B, V), ``generate(..., output_logits=True).logits``.
        digit_ids: :func:`digit_token_ids`.
    """
    columns = torch.tensor(digit_ids, device=step_logits[0].device)
    return torch.stack([lg.index_select(-1, columns) for lg in step_logits], dim=1)


def expected_digits(digits: torch.Tensor) -> torch.Tensor:
    """The expected digit at every step, (B, n) float64, from the digit logits (B, n, 10):
    what :func:`expected_number` computes position by position, for all at once."""
    probs = torch.softmax(digits.double(), dim=-1)
    return (probs * torch.arange(10, dtype=torch.float64)).sum(-1)


def read_expectations(rows: Sequence[Sequence[int]], expected: torch.Tensor, tokenizer,
                      after_tag: bool = False) -> list[float | None]:
    """Expected progress of each generated answer (None where it has no readable number),
    from :func:`expected_digits` of its steps. Each distinct token is decoded once.

    Args:
        rows: the generated token ids per answer.
        expected: (B, n) expected digit per answer and step, on the CPU.
        tokenizer: the model's tokenizer.
        after_tag: the answers start right after ``<progress>`` (teacher-forced prefix).
    """
    piece: dict[int, str] = {t: tokenizer.decode([t]) for t in {t for row in rows for t in row}}
    out: list[float | None] = []
    for b, row in enumerate(rows):
        positions = _digit_positions([piece[t] for t in row], after_tag)
        if positions is None:
            out.append(None)
            continue
        ints, fracs, percent = positions
        places = [10.0 ** (len(ints) - 1 - k) for k in range(len(ints))]
        places += [10.0 ** -(j + 1) for j in range(len(fracs))]
        value = 0.0
        for pos, place in zip(ints + fracs, places):
            value += place * float(expected[b, pos])
        out.append(_to_progress(value, percent))
    return out


def _digit_positions(pieces: Sequence[str], after_tag: bool
                     ) -> tuple[list[int], list[int], bool] | None:
    """Integer and fraction digit positions of the number after the tag, and whether a "%"
    follows; None without a tag or a number."""
    start = 0
    if not after_tag:
        text, start = "", None
        for i, p in enumerate(pieces):
            text += p
            if text.endswith(TAG) or TAG in text[-len(TAG) - len(p):]:
                start = i + 1
                break
        if start is None:
            return None
    ints, fracs, percent = _number_positions(pieces, start)
    return (ints, fracs, percent) if ints else None


def tag_expectations(sequences: torch.Tensor, step_logits: Sequence[torch.Tensor], tokenizer,
                     after_tag: bool = False) -> list[float | None]:
    """:func:`tag_expectation` for each row of a generated batch.

    Only the ten digit columns of the logits leave the device (not the whole vocabulary), and
    each distinct token is decoded once.

    Args:
        sequences: (B, n) generated tokens (prompt removed).
        step_logits: n tensors (B, V), ``generate(..., output_logits=True).logits``.
    """
    digits = digit_columns(step_logits, digit_token_ids(tokenizer)).float().cpu()
    return read_expectations(sequences.tolist(), expected_digits(digits), tokenizer, after_tag)


def done_branch(tokenizer) -> tuple[list[int], int, int]:
    """Where a finished answer and an unfinished one part: the token ids both reasoning parts
    open with, then the next token of the finished one and of the unfinished one.

    Raises:
        ProcvlmError: when one reasoning part's tokens begin the other's (no branch token).
    """
    done = tokenizer.encode(FINISHED_REASONING, add_special_tokens=False)
    todo = tokenizer.encode(reasoning_text(["x"]), add_special_tokens=False)
    k = 0
    while k < min(len(done), len(todo)) and done[k] == todo[k]:
        k += 1
    if k == min(len(done), len(todo)):
        raise ProcvlmError("the tokenizer gives the finished and the unfinished reasoning no "
                           "token where they part: P(done) cannot be read")
    return [int(t) for t in done[:k]], int(done[k]), int(todo[k])


class DoneProbe:
    """A ``generate`` logits processor that records, for every row of a batch, the probability
    of the finished reasoning's branch token against the unfinished one's at the step after
    their shared opening (renormalised over the two, as the digit readout renormalises over
    the digits). It leaves the scores as they are.

    Args:
        branch: :func:`done_branch` of the model's tokenizer.
        prompt_len: the batch's padded prompt length (``input_ids.shape[1]``).
    """

    def __init__(self, branch: tuple[list[int], int, int], prompt_len: int) -> None:
        self.shared, self.done_id, self.todo_id = branch
        self.step = prompt_len + len(self.shared)
        self.p: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == self.step:
            pair = scores[:, [self.done_id, self.todo_id]].float()
            self.p = torch.softmax(pair, dim=-1)[:, 0]
        return scores

    def read(self, new: torch.Tensor) -> list[float | None]:
        """P(done) per row of the generated ids ``new`` (B, n), on the CPU: None where the
        answer does not open with the shared tokens (or ended before the branch)."""
        k = len(self.shared)
        if self.p is None or new.shape[1] <= k:
            return [None] * new.shape[0]
        p = self.p[:new.shape[0]].cpu().tolist()
        opens = (new[:, :k] == torch.tensor(self.shared, dtype=new.dtype)).all(-1).tolist()
        return [float(v) if ok else None for v, ok in zip(p, opens)]
