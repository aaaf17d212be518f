"""The triplet loss and the online miners on cases worked out by hand."""

from __future__ import annotations

import pytest
import torch

from faceprint.train import batch_all, batch_hard, get_miner, pairwise_sq_distances, semi_hard, triplet_loss


def test_triplet_loss_matches_a_hand_computed_value() -> None:
    # squared distances: (a,p) 1 vs (a,n) 4 -> inactive; 4 vs 2 -> 2.2; 1 vs 0.25 -> 0.95
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 2.0]])
    n = torch.tensor([[0.0, 2.0], [1.0, 1.0], [1.5, 1.0]])
    assert triplet_loss(a, p, n, margin=0.2, reduction="none").tolist() == pytest.approx([0.0, 2.2, 0.95])
    assert triplet_loss(a, p, n, margin=0.2, reduction="sum").item() == pytest.approx(3.15)
    assert triplet_loss(a, p, n, margin=0.2).item() == pytest.approx(1.05)
    assert triplet_loss(a[:0], p[:0], n[:0]).item() == 0.0  # no triplet: zero, not NaN
    with pytest.raises(ValueError, match="reduction"):
        triplet_loss(a, p, n, reduction="max")  # type: ignore[arg-type]


def test_gradients_pass_gradcheck_in_float64() -> None:
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda a, p, n: triplet_loss(a, p, n, margin=2.0), (a, p, n))
    emb = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(pairwise_sq_distances, (emb,))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    ia, ip, ineg = batch_hard(
        pairwise_sq_distances(emb).detach(), labels
    )  # indices fixed, loss differentiated

    def mined(e: torch.Tensor) -> torch.Tensor:
        return triplet_loss(e[ia], e[ip], e[ineg], margin=5.0, reduction="sum")

    assert torch.autograd.gradcheck(mined, (emb,))


def test_pairwise_distances_are_exact_on_the_diagonal() -> None:
    e = torch.tensor([[3.0, 4.0], [0.0, 0.0], [3.0, 4.0]])
    d = pairwise_sq_distances(e)
    assert d.tolist() == [[0.0, 25.0, 0.0], [25.0, 0.0, 25.0], [0.0, 25.0, 0.0]]


# A labelled set on a line: squared distances are worked out by hand below.
#   idx:    0    1    2    3    4
#   label:  A    A    B    B    C
#   x:      0    1   1.5   4   2.5
# d(0,1)=1 d(0,2)=2.25 d(0,3)=16 d(0,4)=6.25 d(1,2)=0.25 d(1,3)=9 d(1,4)=2.25
# d(2,3)=6.25 d(2,4)=1 d(3,4)=2.25
X = torch.tensor([[0.0], [1.0], [1.5], [4.0], [2.5]])
Y = torch.tensor([0, 0, 1, 1, 2])


def triplets(miner, **kw) -> set[tuple[int, int, int]]:
    a, p, n = miner(pairwise_sq_distances(X), Y, **kw)
    return set(zip(a.tolist(), p.tolist(), n.tolist()))


def test_batch_hard_picks_farthest_positive_and_nearest_negative() -> None:
    # C (index 4) has no positive, so it is never an anchor
    assert triplets(batch_hard) == {(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 4)}


def test_semi_hard_picks_the_nearest_negative_beyond_the_positive() -> None:
    # (2,3): d_ap = 6.25 but every negative is nearer, so the farthest one (0, at 2.25) stands in
    assert triplets(semi_hard, margin=0.2) == {(0, 1, 2), (1, 0, 4), (2, 3, 0), (3, 2, 1)}


def test_batch_all_lists_every_valid_triplet_and_the_active_ones() -> None:
    every = triplets(batch_all)
    assert len(every) == 12 and all(Y[a] == Y[p] and Y[a] != Y[n] and a != p for a, p, n in every)
    active = {(1, 0, 2), (2, 3, 0), (2, 3, 1), (2, 3, 4), (3, 2, 4)}  # d_ap - d_an + 0.2 > 0
    assert triplets(batch_all, margin=0.2, active_only=True) == active
    assert triplets(get_miner("batch-all-active"), margin=0.2) == active
    with pytest.raises(ValueError, match="semi-hard"):
        get_miner("hardest")


def test_miners_give_nothing_without_positives() -> None:
    d = pairwise_sq_distances(torch.randn(4, 3))
    for name in ("batch-all", "batch-hard", "semi-hard"):
        a, p, n = get_miner(name)(d, torch.arange(4))
        assert len(a) == len(p) == len(n) == 0
