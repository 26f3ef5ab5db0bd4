"""`DAMConfig.fold_generation`: a generation round sampled inside the rollout batch of its micro-step.

What must hold: the round's samples are the policy's law, the rollouts' path ratios are those of the rollouts alone
(no reference call on the round's rows, and the rows do not leak into them), a micro-step makes N + M sequential
denoiser calls instead of N + 2M on the same rows, and the trainer still reaches p* (resuming is tested in
tests/test_trainer_dam.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import test_trainer_dam_fixed_point as fixed_point
import torch
from trainer_helpers import build_trainer, char_tokenizer, cpu_config_kwargs, history

from trl_dam.core import BufferItem, gather_jump_log_probs, jump_log_probs
from trl_dam.core.shared_rows import GroupedRowsDenoiser
from trl_dam.trainers import DAMConfig, DAMTrainer


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


def make_args(tmp_path, **overrides) -> DAMConfig:
    return DAMConfig(**cpu_config_kwargs(tmp_path, **{"beta": 0.05, "fold_generation": True, **overrides}))


def make_trainer(tmp_path, tokenizer, **overrides) -> DAMTrainer:
    return build_trainer(DAMTrainer, make_args(tmp_path, **overrides), tokenizer)


def items_for(trainer, prompts: list[str], completion: str) -> list[BufferItem]:
    """Buffer items with a fixed completion (not a policy sample), so rollouts from them are told apart from fresh
    samples by their law."""
    ids = torch.tensor(trainer.processing_class(text=[completion])["input_ids"][0])
    assert len(ids) == trainer.args.max_completion_length
    return [
        BufferItem(prompt_ids, ids, torch.zeros(1), 0, {"prompt": prompt})
        for prompt, prompt_ids in zip(prompts, trainer._tokenize_prompts(prompts))
    ]


def count_calls(trainer) -> dict[str, list[torch.Tensor]]:
    """Record every input of the trainer's policy and reference denoisers (below the row sharing)."""
    seen: dict[str, list[torch.Tensor]] = {"policy": [], "reference": []}
    denoiser = trainer._denoiser

    def recording(model, reference=False):
        fn = denoiser(model, reference)
        kind = "reference" if reference or model is trainer.ref_model else "policy"

        def call(x):
            seen[kind].append(x.clone())
            return fn(x)

        return call

    trainer._denoiser = recording
    return seen


def test_fold_generation_defaults_off_and_is_documented(tmp_path):
    args = DAMConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none")
    assert args.fold_generation is False
    assert "staleness" in DAMConfig.__dataclass_fields__["fold_generation"].metadata["help"]
    assert "fold_generation" in DAMConfig.__doc__


# ---------------------------------------------------------------------------------------------------- the round


def outcome_counts(completions) -> torch.Tensor:
    """Histogram over fixed_point.OUTCOMES of completion ids (token 9 is digit 0)."""
    counts = torch.zeros(len(fixed_point.OUTCOMES), dtype=torch.float64)
    for ids in completions:
        counts[fixed_point.OUTCOMES.index(tuple(0 if t == 9 else 1 for t in ids.tolist()))] += 1
    return counts


def chi_square(counts: torch.Tensor, law: torch.Tensor) -> float:
    expected = counts.sum() * law
    return float(((counts - expected) ** 2 / expected).sum())


def test_folded_round_samples_the_policy_law(tmp_path):
    """2,000 folded samples of the tabular model at a random table match its exact law (chi-square 2.0 on 7 degrees of
    freedom measured; p = 0.001 is 24.3), while the rollouts of the same batches, which start from states re-masked
    from a fixed completion, do not (chi-square 259 on 160 rollouts): rows of the two kinds are not mixed up."""
    trainer = fixed_point.make_trainer(
        tmp_path,
        fold_generation=True,
        per_device_train_batch_size=16,
        replay_buffer_size=4000,
        dam_target="all_positions",  # its inputs carry the rollouts' final states
    )
    table = 1.5 * torch.randn(trainer.model.table.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        trainer.model.table.copy_(table)
    law = fixed_point.exact_law(table)
    rows = [{"prompt": "abc"}] * 200
    items = items_for(trainer, ["abc", "abc"], "bbb")
    rollouts = []
    for _ in range(10):
        inputs = trainer._dam_inputs(items, generation_rows=rows)
        assert inputs["weights"].shape == (2, 8)
        rollouts.extend(inputs["finals"][:, :, -fixed_point.N :].reshape(-1, fixed_point.N))
    buffer = trainer.replay_buffer.items
    assert len(buffer) == 2000
    samples = outcome_counts([item.completion_ids for item in buffer])
    assert chi_square(samples, law) < 24.3, (chi_square(samples, law), samples, law)
    assert chi_square(outcome_counts(rollouts), law) > 100, chi_square(outcome_counts(rollouts), law)
    # Scored and logged as a round of its own is: each item's reward, one reward and length metric per round.
    for item in buffer:
        outcome = fixed_point.OUTCOMES.index(tuple(0 if t == 9 else 1 for t in item.completion_ids.tolist()))
        assert float(item.rewards[0]) == pytest.approx(float(fixed_point.REWARD[outcome]))
    assert len(trainer._metrics["train"]["reward"]) == 10
    assert len(trainer._metrics["train"]["completions/mean_length"]) == 10


# ---------------------------------------------------------------------------------------------------- the rollouts


@pytest.mark.parametrize("sampling_batch_size", [None, 5])  # 5: sampler calls of 4, 4 and 3 (the round's) rows
def test_rollout_path_ratios_are_the_rollouts_own(tmp_path, tokenizer, sampling_batch_size):
    """Every recorded policy and reference log-prob of the folded rollouts equals a separate forward on the state it
    jumped from, with no round row in the batch; the reference never sees a round row; the round's prompts are
    longer than the states', so the states are left-padded, and the loss forward on the padded X_t reads the
    rollouts' own first-jump log-probs (theta = u-bar)."""
    trainer = make_trainer(
        tmp_path, tokenizer, per_device_train_batch_size=8, num_generations=4, sampling_batch_size=sampling_batch_size
    )
    noise = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the reference, so that the path ratios are not all 0
        for p in trainer.model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=noise))
    trainer.model.train()
    seen = count_calls(trainer)
    items = items_for(trainer, ["h", "g"], "aabbcc")
    rows = [{"prompt": "fgh a"}, {"prompt": "abc"}, {"prompt": "cab"}]
    num, length = 4, trainer.args.max_completion_length
    x_t = trainer._canvas([item.prompt_ids for item in items])  # both states fully masked ...
    x_t[0, -2] = trainer.processing_class.convert_tokens_to_ids("c")  # ... but one token of the first
    padded, rollouts = trainer._rollouts_and_round(x_t, rows)

    width = max(len(p) for p in trainer._tokenize_prompts([r["prompt"] for r in rows]))
    assert padded.shape == (2, width + length) and torch.equal(padded[:, -x_t.shape[1] :], x_t)
    assert torch.equal(rollouts.initial, padded.repeat_interleave(num, 0))
    assert rollouts.final.shape[0] == 2 * num and not (rollouts.final == trainer.mask_token_id).any()
    assert rollouts.num_steps == length  # the fully masked state needs N steps; no padded step is kept
    # The reference ran on rollout rows only (their prompts are the states' one-token prompts).
    state_prompts = {tuple(row[:-length].tolist()) for row in padded}
    assert seen["reference"] and all(
        tuple(r[:-length].tolist()) in state_prompts for x in seen["reference"] for r in x
    )
    assert sum(len(x) for x in seen["reference"]) == (2 * length - 1) * num - 2 * (num - 1)  # minus step 0's sharing

    policy = trainer._denoiser(trainer.model)
    reference = trainer._reference_denoiser(trainer.model)
    trainer.model.eval()
    for step in range(rollouts.num_steps):
        valid = rollouts.step_mask[:, step]
        state = rollouts.state_before_step(step)[valid]
        pos, tok = rollouts.positions[valid, step], rollouts.tokens[valid, step]
        for fn, recorded in ((policy, rollouts.logp_policy), (reference, rollouts.logp_reference)):
            with torch.no_grad():
                expected = jump_log_probs(fn, state, pos, tok, trainer.mask_token_id)
            torch.testing.assert_close(recorded[valid, step], expected, atol=1e-5, rtol=0)
    assert float((rollouts.logp_reference - rollouts.logp_policy).abs().max()) > 0  # the policy is not the reference
    trainer.model.train()

    # Through `_dam_inputs`: the loss forward on the padded states reproduces the sampler's first-jump log-probs.
    inputs = trainer._dam_inputs(items, generation_rows=rows)
    assert inputs["x_t"].shape == (2, width + length)
    with torch.no_grad():
        x = inputs["x_t"]
        logits = trainer.adapter.logits(trainer.model, x, trainer._attention_mask(x))
    a = gather_jump_log_probs(logits, inputs["positions"], inputs["tokens"], trainer.mask_token_id)
    torch.testing.assert_close(a, inputs["logp_sampler"], atol=1e-5, rtol=0)


def test_folded_micro_step_makes_n_plus_m_calls_on_the_same_rows(tmp_path, tokenizer):
    """A folded micro-step makes max(N, M) policy calls and M reference calls (M: the most masks of a state), where a
    round of its own and then the rollouts make N + 2M; the denoiser rows (computed plus shared) are the round's N per
    prompt plus the rollouts' 2 K per mask, as without folding, and the rollouts' first step is still shared."""
    trainer = make_trainer(tmp_path, tokenizer, per_device_train_batch_size=12, num_generations=4)
    seen = count_calls(trainer)
    items = items_for(trainer, ["abc", "de", "h"], "aabbcc")
    rows = [{"prompt": p} for p in ("fgh a", "bb", "g", "ef", "ha")]
    inputs = trainer._dam_inputs(items, generation_rows=rows)
    num, length = 4, trainer.args.max_completion_length
    masks = (inputs["x_t"] == trainer.mask_token_id).sum(1)
    calls = {kind: len(x) for kind, x in seen.items()}
    assert calls == {"policy": length, "reference": int(masks.max())}
    saved = trainer._metrics["train"]["sampling/rows_saved"][-1]
    computed = sum(len(x) for xs in seen.values() for x in xs)
    assert computed + saved == len(rows) * length + 2 * num * int(masks.sum())
    assert saved >= 2 * (num - 1) * len(items)  # step 0 of the rollouts, for policy and reference

    # The same work unfolded, on the same states: N + 2M sequential calls.
    for xs in seen.values():
        xs.clear()
    trainer._sample(trainer._canvas(trainer._tokenize_prompts([r["prompt"] for r in rows])))
    trainer._sample(inputs["x_t"].repeat_interleave(num, 0), with_reference=True, group_size=num)
    assert sum(len(x) for x in seen.values()) == length + 2 * int(masks.max())
    assert sum(calls.values()) < length + 2 * int(masks.max())


def test_grouped_rows_share_identical_groups_next_to_other_rows():
    """Identical groups of K rows are computed once even when groups that differ and rows past the last whole group
    share the call; the logits are those of the plain call."""
    table = torch.randn(5, 6, 7, generator=torch.Generator().manual_seed(0))
    computed = []

    def logits_fn(x):
        computed.append(len(x))
        return table[x[:, 0] % 5] + x[:, :, None].float()

    same = torch.tensor([[1, 4, 4, 2, 4, 4]]).repeat(3, 1)
    differ = torch.tensor([[2, 4, 4, 4, 4, 4], [2, 4, 4, 4, 1, 4], [2, 4, 4, 4, 4, 4]])
    tail = torch.tensor([[3, 4, 4, 4, 4, 4], [3, 4, 4, 4, 4, 4]])
    x = torch.cat([same, differ, same + 1, tail])  # groups: same, differ, same; then 2 trailing rows
    shared = GroupedRowsDenoiser(logits_fn, 3)
    torch.testing.assert_close(shared(x), logits_fn(x), rtol=0, atol=0)
    assert computed[0] == 1 + 3 + 1 + 2 and shared.rows_saved == 4
    plain = GroupedRowsDenoiser(logits_fn, 3)
    plain(differ)
    assert plain.rows_saved == 0 and computed[-1] == 3

    # Asked for positions (a different one per row, as the rollouts reveal), the shared rows get their own.
    positions = torch.tensor([[1], [2], [4], [1], [3], [5], [2], [1], [0], [4], [2]])
    rows = torch.arange(len(x)).unsqueeze(1)
    torch.testing.assert_close(shared(x, positions), logits_fn(x)[rows, positions], rtol=0, atol=0)
    asked = []

    def head_at_positions(x, positions):
        asked.append(positions.clone())
        return logits_fn(x)[torch.arange(len(x)).unsqueeze(1), positions]

    head_at_positions.accepts_positions = True
    restricted = GroupedRowsDenoiser(head_at_positions, 3)
    torch.testing.assert_close(restricted(x, positions), logits_fn(x)[rows, positions], rtol=0, atol=0)
    assert asked[0].shape == (7, 3) and asked[0][0].tolist() == [1, 2, 4]  # one row for the first group


# ---------------------------------------------------------------------------------------------------- training


def test_fixed_point_is_reached_with_folded_rounds(tmp_path):
    """The trainer fixed-point run (exact KL(p* || p_theta), 0.36 at the base) with every round after the first
    folded: measured 1.6e-3 after 80 steps (2.3e-3 without folding), each step training on the previous step's
    samples."""
    trainer = fixed_point.make_trainer(tmp_path, fold_generation=True)
    rounds = []
    generation_round = trainer._generation_round
    trainer._generation_round = lambda rows: rounds.append(len(rows)) or generation_round(rows)
    trainer.train()
    assert rounds == [8]  # only the first round ran a sampler of its own
    # Averaged over the 80 steps of the one log: every step after the first trains on the previous step's samples.
    assert history(trainer, "buffer/staleness") == [pytest.approx(79 / 80)]
    kl = fixed_point.kl_to_p_star(trainer.model)
    assert kl < fixed_point.THRESHOLD, (kl, fixed_point.KL_BASE)
