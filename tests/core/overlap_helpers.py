"""Drivers for the drafting-ahead tests: the worker's Speculator run in the test's own process
(drafting ahead right after each proposal, before the verdict, as a worker with
finish_branches does), and a decoder over the tiny pair with both kinds of drafter."""
from specscope.core.drafters.base import DrafterBase, Proposal
from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.overlap import Speculator
from specscope.core.drafters.worker import WorkerDrafter
from specscope.core.events import Drafted
from specscope.core.workers import worker_seed

import torch


class InlineOverlap(DrafterBase):
    """The Speculator as a drafter in this process: propose, then draft every branch ahead at
    once (what the worker would draft while the target verifies), settle on the verdict."""

    def __init__(self, speculator: Speculator, max_branches: int = 4) -> None:
        self.s = speculator
        self.name = speculator.method
        self.max_branches = max_branches
        self.generator = torch.Generator()
        self.committed = None

    def read_params(self):
        return self.s.model.read_params()

    def configure(self, settings):
        from dataclasses import replace

        (self.s.tree or self.s.model).configure(replace(settings, overlap=False))
        self.settings = settings

    def reset(self):
        self.s.reset()

    def propose(self, ids, k, shaping, generator):
        if self.committed != list(ids):
            self.generator.manual_seed(worker_seed(generator.initial_seed(), len(ids)))
            self.s.new_run()
        proposal = self.s.propose(list(ids), k, shaping, self.generator, True)
        if k > 0:
            self.s.speculate(shaping, self.generator, k, self.max_branches, lambda: False)
        return proposal

    def feedback(self, ids, proposal: Proposal, n_accepted):
        self.committed = list(ids)
        self.s.settle(list(ids))


def overlap_factories(worker, vocab, tree_kw, max_branches=4):
    """The model drafters in the worker, and 'inline-draft'/'inline-tree' in this process."""
    def extra(target, draft):
        return {
            "draft": lambda: WorkerDrafter(worker, "draft"),
            "tree": lambda: WorkerDrafter(worker, "tree"),
            "pool": lambda: WorkerDrafter(worker, "pool"),
            "jacobi": lambda: WorkerDrafter(worker, "jacobi"),
            "inline-draft": lambda: InlineOverlap(Speculator(ModelDrafter(draft, vocab)), max_branches),
            "inline-tree": lambda: InlineOverlap(Speculator(ModelDrafter(draft, vocab), "tree", **tree_kw),
                                                 max_branches),
        }
    return extra


def coverage(drafted):
    """What drafting ahead met, from Drafted events in order (runs one after another): per
    step after the first, (the branch its proposal came from, where the verdict before it cut
    that step's proposal: accepted tokens, the proposal's length, a hedge missed there)."""
    seen = set()
    for d0, d1 in zip(drafted, drafted[1:]):
        if d1.step == d0.step + 1 and d1.overlap is not None:
            cut = d1.context_len - d0.context_len - 1
            seen.add((d1.overlap.branch, cut, len(d0.tokens), d1.overlap.hedge_missed))
    return seen


def drafted_of(events):
    return [e for e in events if isinstance(e, Drafted)]
