"""Properties of the pure batching functions."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from skbert._batching import (
    batch_sizes,
    count_batches,
    length_grouped_batches,
    pad_batch,
    round_up,
    smallest_batch,
    sorted_batches,
    training_batches,
)

lengths_st = st.lists(st.integers(1, 300), min_size=1, max_size=200).map(np.array)


@given(lengths=lengths_st, budget=st.integers(1, 5000), cap=st.none() | st.integers(1, 64))
def test_sorted_batches_cover_every_index_once_within_budget(lengths, budget, cap):
    """Check that sorted batches hold every index once, longest first, under the budget."""
    batches = sorted_batches(lengths, budget, max_batch_size=cap, multiple_of=8)
    flat = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(flat), np.arange(len(lengths)))
    assert np.all(np.diff(lengths[flat]) <= 0)
    for batch in batches:
        padded = round_up(int(lengths[batch].max()), 8)
        assert len(batch) == 1 or len(batch) * padded <= budget
        assert cap is None or len(batch) <= cap


@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=3000).map(np.array),
    batch_size=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
)
def test_length_grouped_batches_cover_every_index_once(lengths, batch_size, seed):
    """Check that training batches hold every index once and respect batch_size."""
    batches = length_grouped_batches(lengths, batch_size, np.random.default_rng(seed))
    flat = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(flat), np.arange(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(batches) == count_batches(len(lengths), batch_size)
    assert min(map(len, batches)) == smallest_batch(len(lengths), batch_size)
    assert sorted(map(len, batches)) == sorted(batch_sizes(len(lengths), batch_size))
    if batch_size >= 3 and len(lengths) >= 2:  # BatchNorm heads need two texts a batch
        assert min(map(len, batches)) >= 2


@given(n=st.integers(1, 3000), batch_size=st.integers(1, 40), seed=st.integers(0, 99))
def test_batch_count_of_an_even_cut(n, batch_size, seed):
    """Check the one batch-count rule against the cut frozen training makes."""
    batches = training_batches(n, batch_size, np.random.default_rng(seed), length_grouped=False)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n))
    assert len(batches) == count_batches(n, batch_size, length_grouped=False)
    assert min(map(len, batches)) == smallest_batch(n, batch_size, length_grouped=False)


def test_length_grouped_batches_group_lengths_and_shuffle():
    """Check that grouping cuts padding versus random batches and that seeds differ."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 120, size=3200)
    grouped = length_grouped_batches(lengths, 32, np.random.default_rng(1))
    random = np.array_split(rng.permutation(len(lengths)), 100)

    def padded_tokens(batches):
        return sum(len(b) * lengths[b].max() for b in batches)

    assert padded_tokens(grouped) < 0.7 * padded_tokens(random)
    other = length_grouped_batches(lengths, 32, np.random.default_rng(2))
    assert not all(np.array_equal(a, b) for a, b in zip(grouped, other, strict=True))


@settings(max_examples=50)
@given(
    rows=st.lists(st.lists(st.integers(1, 999), min_size=1, max_size=40), min_size=1,
                  max_size=20),
    pairs=st.booleans(),
)
def test_pad_batch_round_trips_tokens(rows, pairs):
    """Check that padding keeps each text's ids, masks the rest, and rounds to 8."""
    lengths = np.array([len(r) for r in rows])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.concatenate([np.array(r, dtype=np.int32) for r in rows])
    type_ids = (ids % 2).astype(np.int8) if pairs else None
    order = np.arange(len(rows))[::-1]
    input_ids, mask, token_types = pad_batch(ids, offsets, order, pad_id=0, type_ids=type_ids,
                                             multiple_of=8)
    assert input_ids.shape[1] % 8 == 0
    assert input_ids.shape[1] - lengths.max() < 8
    for k, row in enumerate(order):
        n = lengths[row]
        np.testing.assert_array_equal(input_ids[k, :n], rows[row])
        assert mask[k, :n].all() and not mask[k, n:].any()
        assert (input_ids[k, n:] == 0).all()
        if pairs:
            np.testing.assert_array_equal(token_types[k, :n], np.array(rows[row]) % 2)
    assert (token_types is None) == (not pairs)
