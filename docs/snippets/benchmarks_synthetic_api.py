from trl_dam.synthetic import SyntheticConfig, run_synthetic

# One run of the exact-KL benchmark from Python, at toy size (the script's defaults are a 91x91 grid and 8000
# iterations). KL(p* || p_u) after each jump is computed by enumerating every state, never by sampling.
config = SyntheticConfig(task="checkerboard", method="dam", size=15, iterations=40, eval_every=20, num_states=64)
result = run_synthetic(config)
for iteration, kl_1, kl_2 in zip(result.iterations, result.kl_first_jump, result.kl_final_jump):
    print(f"iteration {iteration:3d}: KL after jump 1 {kl_1:.2e}, after jump 2 {kl_2:.2e}")
