r"""An exact-KL task with long completions: ``L`` tokens over a vocabulary of ``V``, every law enumerated.

* **Denoiser.** :class:`SequenceDenoiser`, a small MLP shared across all states, ``x[batch, L] -> logits[batch, L,
  V + 1]`` (mask id ``V``), used through the generic masked-CTMC sampler as a real masked LM is.
* **Base.** A random first-order Markov chain over the ``V`` tokens gives structure across positions; the base
  *network* is pre-trained on it the way masked diffusion LMs are (cross-entropy at the masked positions of
  randomly re-masked sequences, :func:`pretrain_on_markov`) and then frozen. The base of the benchmark is that
  network's own chain, not the Markov chain: :math:`p^{\mathrm{base}}` is the exact final law of its random-order
  unmasking (:func:`exact_final_log_law`), so the network need not be order-consistent for the KL to be exact.
* **Reward.** :func:`successor_reward`, the fraction of adjacent pairs in which a token is followed by its successor
  ``(v + 1) mod V``: a property of the whole sequence that no single position decides.
* **Target.** :math:`p^* \propto p^{\mathrm{base}} e^{r/\beta}`, enumerated over the :math:`V^L` completions.

**Exact final law by dynamic programming over partial states.** With one token per step and a uniformly random
masked position, a partial state :math:`s` with :math:`m` masks is left for :math:`s[i \leftarrow v]` with
probability :math:`p_\theta(v \mid s, i)/m`, so the probability of passing through each state satisfies

.. math:: P(s[i \leftarrow v]) \mathrel{+}= P(s)\, \frac{p_\theta(v \mid s, i)}{m},

processed in order of decreasing :math:`m` from :math:`P(m^L) = 1`. The final law is :math:`P` on the :math:`V^L`
complete states. Cost: one denoiser row per partial state, :math:`(V + 1)^L` (65,536 at ``L = 8, V = 3``; 531,441
at ``L = 12, V = 2``), and :math:`O((V+1)^L L V)` additions. The sums of products run in float64 probability space
(the smallest path probability here is far above float64's range limit); the log is taken once, at the end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trl_dam.core.masking import remask
from trl_dam.core.sampling import token_log_probs


class SequenceDenoiser(torch.nn.Module):
    """MLP denoiser over ``length`` positions: ``x[batch, length]`` (tokens ``0..V-1``, mask ``V``) -> logits."""

    def __init__(self, length: int, vocab: int, hidden: int = 128, embedding: int = 16):
        super().__init__()
        self.length, self.vocab, self.mask_token_id = length, vocab, vocab
        # One embedding per (position, token): the network knows where each token sits.
        self.embed = torch.nn.Embedding(length * (vocab + 1), embedding)
        self.register_buffer("offsets", torch.arange(length) * (vocab + 1), persistent=False)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(length * embedding, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, length * (vocab + 1)),
        )

    def forward(self, x: Tensor) -> Tensor:
        features = self.embed(x + self.offsets).flatten(1)
        return self.mlp(features).view(-1, self.length, self.vocab + 1)


def random_markov_chain(vocab: int, seed: int, sharpness: float = 1.5) -> tuple[Tensor, Tensor]:
    """``(log_initial[V], log_transition[V, V])`` with logits ``sharpness * N(0, 1)`` (float64)."""
    generator = torch.Generator().manual_seed(seed)
    initial = torch.log_softmax(sharpness * torch.randn(vocab, generator=generator, dtype=torch.float64), 0)
    transition = torch.log_softmax(sharpness * torch.randn(vocab, vocab, generator=generator, dtype=torch.float64), 1)
    return initial, transition


def sample_markov(log_initial: Tensor, log_transition: Tensor, num: int, length: int, generator) -> Tensor:
    """``num`` sequences of ``length`` tokens from the chain."""
    tokens = [torch.multinomial(log_initial.exp(), num, replacement=True, generator=generator)]
    for _ in range(length - 1):
        rows = log_transition.exp()[tokens[-1]]
        tokens.append(torch.multinomial(rows, 1, generator=generator).squeeze(1))
    return torch.stack(tokens, 1)


def pretrain_on_markov(
    net: SequenceDenoiser, steps: int, seed: int, batch: int = 256, lr: float = 3e-3, sharpness: float = 1.5
) -> float:
    """Masked-LM pre-training on a random Markov chain; returns the last batch's mean cross-entropy (nats/token)."""
    generator = torch.Generator().manual_seed(seed)
    log_initial, log_transition = random_markov_chain(net.vocab, seed, sharpness)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    everywhere = torch.ones(batch, net.length, dtype=torch.bool)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        clean = sample_markov(log_initial, log_transition, batch, net.length, generator)
        noisy, _ = remask(clean, everywhere, net.mask_token_id, generator)
        masked = noisy == net.mask_token_id
        logp = token_log_probs(net(noisy), net.mask_token_id)
        loss = -(logp.gather(-1, clean.unsqueeze(-1)).squeeze(-1) * masked).sum() / masked.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def successor_reward(tokens: Tensor, vocab: int, scale: float = 2.0) -> Tensor:
    r""":math:`r(x) = \mathrm{scale} \cdot \frac{1}{L-1}\#\{i : x_{i+1} = (x_i + 1) \bmod V\}` (float64)."""
    hits = tokens[..., 1:] == (tokens[..., :-1] + 1) % vocab
    return scale * hits.double().mean(-1)


def all_partial_states(length: int, vocab: int) -> Tensor:
    """Every state in :math:`\\{0..V-1, m\\}^L` (mask id ``V``), row ``c`` holding the base-``(V+1)`` digits of ``c``."""
    codes = torch.arange((vocab + 1) ** length)
    return (codes[:, None] // (vocab + 1) ** torch.arange(length)) % (vocab + 1)


def all_completions(length: int, vocab: int) -> Tensor:
    """The :math:`V^L` complete states, row ``c`` holding the base-``V`` digits of ``c`` (the order of the laws)."""
    codes = torch.arange(vocab**length)
    return (codes[:, None] // vocab ** torch.arange(length)) % vocab


@torch.no_grad()
def exact_final_log_law(logits_fn, length: int, vocab: int, chunk: int = 65_536) -> Tensor:
    """:math:`\\log P(X_1 = c)` of the random-order masked chain of ``logits_fn`` from the all-masked state (see
    module docstring), ``[V^L]`` float64 in the order of :func:`all_completions`."""
    states = all_partial_states(length, vocab)
    probs = (
        torch.cat(
            [
                token_log_probs(logits_fn(states[i : i + chunk]), vocab)[..., :vocab]
                for i in range(0, len(states), chunk)
            ]
        )
        .double()
        .exp()
    )  # [S, L, V]
    masked = states == vocab
    num_masked = masked.sum(1)
    powers = (vocab + 1) ** torch.arange(length)
    reach = torch.zeros(len(states), dtype=torch.float64)
    reach[int((vocab * powers).sum())] = 1.0
    for m in range(length, 0, -1):
        layer = (num_masked == m).nonzero(as_tuple=True)[0]
        share = reach[layer] / m
        for i in range(length):
            source = layer[masked[layer, i]]
            for v in range(vocab):
                reach.index_add_(0, source + (v - vocab) * powers[i], share[masked[layer, i]] * probs[source, i, v])
    finals = all_completions(length, vocab)
    return reach[(finals * powers).sum(1)].log()


def target_log_law(log_base: Tensor, rewards: Tensor, beta: float) -> Tensor:
    r""":math:`\log p^* = \log p^{\mathrm{base}} + r/\beta - \log \sum_z p^{\mathrm{base}}(z) e^{r(z)/\beta}`."""
    tilted = log_base + rewards / beta
    return tilted - torch.logsumexp(tilted, 0)
