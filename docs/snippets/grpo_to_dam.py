from trl import GRPOConfig

from trl_dam import DAMConfig

# The same batch geometry in both: 16 completions per device and micro-step, 8 per prompt (GRPO) or per training
# state (DAM), so 2 prompts / 2 training states per micro-step.
shared = dict(
    output_dir="out",
    per_device_train_batch_size=16,
    num_generations=8,
    max_completion_length=128,
    learning_rate=3e-6,
    reward_weights=[1.0, 0.5],
    bf16=False,
)
grpo = GRPOConfig(**shared, beta=0.04, epsilon=0.2, num_iterations=1, steps_per_generation=4, temperature=1.0)
dam = DAMConfig(
    **shared,
    beta=0.05,  # not a penalty weight: the temperature of the target p* ∝ p_base exp(r / beta)
    inner_steps=1,  # optimizer steps per generation round (GRPO's closest knob: num_iterations)
    per_device_prompts_per_generation=8,  # fresh samples per round, added to the replay buffer
    replay_buffer_size=32,  # None = on-policy (one round)
    sampler="ctmc",  # exact importance weights; "low_confidence" = LLaDA's decoder (approximate)
)
assert dam.states_per_micro_step == 2 and dam.buffer_capacity == 32
