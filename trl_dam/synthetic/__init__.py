"""The paper's exact-KL synthetic benchmark: two tokens on an ``M x M`` grid, every distribution enumerated."""

from trl_dam.synthetic.chain import TwoJumpChain, base_chain, final_log_marginal, jump_kls, optimal_chain
from trl_dam.synthetic.runner import METHODS, SyntheticConfig, SyntheticResult, exact_densities, run_synthetic
from trl_dam.synthetic.tasks import TASKS, make_task

__all__ = [
    "METHODS",
    "TASKS",
    "SyntheticConfig",
    "SyntheticResult",
    "TwoJumpChain",
    "base_chain",
    "exact_densities",
    "final_log_marginal",
    "jump_kls",
    "make_task",
    "optimal_chain",
    "run_synthetic",
]
