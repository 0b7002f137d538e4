"""Chain verifiers as the papers state them, for the tests to compare against: the chain cases
of the tree verifiers the engine runs (core/verify.py)."""
import torch

from specscope.core.verify import Verdict, chain, greedy_verify_tree, sample_verify_tree


def greedy_verify(draft: list[int], target_argmax: list[int]) -> Verdict:
    """Chain: accept while the draft equals the target's argmax; the target's argmax follows."""
    return greedy_verify_tree(draft, chain(len(draft)), target_argmax)


def speculative_sample(draft: list[int], p: torch.Tensor, q: torch.Tensor | None,
                       generator: torch.Generator | None) -> Verdict:
    """Chain: accept x_i with probability min(1, p(x_i)/q(x_i)); on rejection resample from
    normalize(max(0, p - q)); after all k accepted, the bonus token comes from p."""
    return sample_verify_tree(draft, chain(len(draft)), p, q, generator)
