"""Search: coefficient spaces (full, EMA basis, splines), optimisers behind one ask/tell interface (Algorithm 1,
CMA-ES, separable CMA-ES), racing on sample count, the gradient search through the sampler, the journal, outputs."""

from lcsc.search.basis import SPACE_KINDS, CoefficientSpace, parse_space
from lcsc.search.config import SearchConfig
from lcsc.search.evolution import Alg1Optimizer, EvolutionParams, propose_generation
from lcsc.search.exported import ExportedCoefficients, exported_coefficients
from lcsc.search.grad_config import GradConfig
from lcsc.search.gradient import run_gradient_search, share_initial_population
from lcsc.search.hyperplane import Hyperplane, sum_zero_basis
from lcsc.search.journal import Journal
from lcsc.search.optimizer import OPTIMIZERS, Optimizer, make_optimizer
from lcsc.search.provenance import write_search_outputs
from lcsc.search.runner import SearchResult, coefficient_hash, run_search
from lcsc.search.space import SearchSpace, default_half_lives, ema_coefficients, half_life_to_rate

__all__ = [
    "Alg1Optimizer",
    "CoefficientSpace",
    "EvolutionParams",
    "ExportedCoefficients",
    "GradConfig",
    "Hyperplane",
    "Journal",
    "OPTIMIZERS",
    "Optimizer",
    "SPACE_KINDS",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "coefficient_hash",
    "default_half_lives",
    "ema_coefficients",
    "exported_coefficients",
    "half_life_to_rate",
    "make_optimizer",
    "parse_space",
    "propose_generation",
    "run_gradient_search",
    "share_initial_population",
    "run_search",
    "sum_zero_basis",
    "write_search_outputs",
]
