"""Soft Orthogonality, TCM (against pml's) and its combination, and the loss factory."""

import pytest
import torch
from pytorch_metric_learning import losses
from torch.nn import functional as F

from pairclass.dml.losses import LOSSES, build_loss
from pairclass.dml.soft_orthogonality import SoftOrthogonalityRegularizer
from pairclass.dml.tcm import DenseTCMLoss
from pairclass.errors import InputError


def _so_reference(P):
    P = P / P.norm(dim=1, keepdim=True)
    return float(((P @ P.T - torch.eye(P.shape[0])) ** 2).sum())


def test_so_is_zero_for_orthonormal_proxies_at_any_scale():
    Q, _ = torch.linalg.qr(torch.randn(8, 5, generator=torch.Generator().manual_seed(0)))
    reg = SoftOrthogonalityRegularizer()
    assert float(reg(Q.T)) == pytest.approx(0.0, abs=1e-10)
    assert float(reg(3.0 * Q.T)) == pytest.approx(0.0, abs=1e-10)


def test_so_is_positive_otherwise_and_matches_the_frobenius_formula():
    P = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    value = float(SoftOrthogonalityRegularizer()(P))
    assert value > 0
    assert value == pytest.approx(_so_reference(P), rel=1e-5)


def test_so_gradient_step_moves_proxies_towards_orthogonality():
    P = torch.randn(4, 6, generator=torch.Generator().manual_seed(2)) + 2.0  # strongly correlated rows
    P.requires_grad_(True)
    reg = SoftOrthogonalityRegularizer()
    before = _so_reference(P.detach())
    mean_cos_before = (F.normalize(P.detach(), dim=1) @ F.normalize(P.detach(), dim=1).T).abs().mean()
    reg(P).backward()
    with torch.no_grad():
        moved = P - 0.05 * P.grad
    assert _so_reference(moved) < before
    mean_cos_after = (F.normalize(moved, dim=1) @ F.normalize(moved, dim=1).T).abs().mean()
    assert mean_cos_after < mean_cos_before


@pytest.mark.parametrize("name", ["proxy_anchor", "proxy_nca", "soft_triple"])
def test_so_weight_adds_the_regulariser_to_proxy_losses(name):
    emb = F.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(3)), dim=1)
    labels = torch.arange(16) % 4
    torch.manual_seed(0)
    plain = build_loss(name, 4, 8)
    torch.manual_seed(0)
    regular = build_loss(name, 4, 8, so_weight=0.5)
    weights = {"proxy_anchor": "proxies", "proxy_nca": "proxies", "soft_triple": "fc"}[name]
    W = getattr(regular, weights)
    W = W.T if name == "soft_triple" else W
    expected = plain(emb, labels).item() + 0.5 * _so_reference(W.detach())
    assert regular(emb, labels).item() == pytest.approx(expected, rel=1e-4)


def _separated_batch():
    # Two classes on orthogonal axes, each a tight cluster: positives cos ~1 > m+ = 0.9,
    # negatives cos ~0 < m- = 0.5.
    base = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    emb = base[[0, 0, 0, 1, 1, 1]] + 0.01 * torch.tensor([[0, 0, 1], [0, 0, -1], [0, 0, 0]] * 2)
    return F.normalize(emb, dim=1), torch.tensor([0, 0, 0, 1, 1, 1])


def test_tcm_is_zero_when_positives_exceed_m_plus_and_negatives_stay_below_m_minus():
    emb, labels = _separated_batch()
    assert float(losses.ThresholdConsistentMarginLoss()(emb, labels)) == 0.0
    combined = build_loss("contrastive", 2, 3, tcm_weight=2.0)
    assert float(combined(emb, labels)) == pytest.approx(float(build_loss("contrastive", 2, 3)(emb, labels)))


def test_tcm_weight_adds_the_weighted_tcm_term_when_pairs_are_hard():
    emb = F.normalize(torch.randn(12, 4, generator=torch.Generator().manual_seed(4)), dim=1)
    labels = torch.arange(12) % 3
    tcm = float(losses.ThresholdConsistentMarginLoss()(emb, labels))
    assert tcm > 0
    torch.manual_seed(0)
    base = build_loss("proxy_anchor", 3, 4)(emb, labels).item()
    torch.manual_seed(0)
    both = build_loss("proxy_anchor", 3, 4, tcm_weight=0.25)(emb, labels).item()
    assert both == pytest.approx(base + 0.25 * tcm, rel=1e-5)


@pytest.mark.parametrize("spread", [0.3, 1.0, 3.0])  # most pairs hard, some, few positives hard
def test_dense_tcm_has_pml_tcm_value_and_gradient(spread):
    g = torch.Generator().manual_seed(6)
    labels = torch.randint(0, 7, (96,), generator=g)
    raw = torch.randn(96, 10, generator=g) + spread * torch.randn(7, 10, generator=g)[labels]
    results = []
    for loss in (losses.ThresholdConsistentMarginLoss(), DenseTCMLoss()):
        emb = raw.clone().requires_grad_()
        value = loss(F.normalize(emb, dim=1), labels)
        value.backward()
        results.append((value.item(), emb.grad))
    (v_pml, g_pml), (v_dense, g_dense) = results
    assert v_pml > 0
    assert v_dense == pytest.approx(v_pml, rel=1e-5)
    torch.testing.assert_close(g_dense, g_pml, rtol=1e-4, atol=1e-7)


def test_dense_tcm_side_without_hard_pairs_adds_nothing():
    # One positive pair at cos 0.8 (hard: 0.1 below m+), no negative pair above m- = 0.5.
    emb = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    assert float(DenseTCMLoss()(emb, torch.tensor([0, 0, 1]))) == pytest.approx(0.1)
    assert float(losses.ThresholdConsistentMarginLoss()(emb, torch.tensor([0, 0, 1]))) == pytest.approx(0.1)


def test_every_loss_has_gradients_for_the_embeddings():
    labels = torch.arange(16) % 4
    for name in LOSSES:
        emb = torch.randn(16, 8, generator=torch.Generator().manual_seed(5), requires_grad=True)
        build_loss(name, 4, 8, tcm_weight=1.0)(F.normalize(emb, dim=1), labels).backward()
        assert emb.grad is not None and torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "triplet"}, "unknown loss 'triplet'; choose one of proxy_anchor, proxy_nca, soft_triple, contrastive"),
        ({"name": "proxy_anchor", "so_weight": -1}, "so_weight must be 0 or more, got -1"),
        ({"name": "contrastive", "so_weight": 0.1}, "so_weight needs a proxy loss; 'contrastive' has no proxies"),
    ],
)
def test_bad_loss_settings_raise_input_error(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(InputError) as e:
        build_loss(name, 3, 4, **kwargs)
    assert str(e.value) == message
