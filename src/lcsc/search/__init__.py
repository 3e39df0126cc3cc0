"""Search: coefficient spaces, the LCSC evolutionary search (Algorithm 1), its journal, and outputs."""

from lcsc.search.config import SearchConfig
from lcsc.search.evolution import EvolutionParams, propose_generation
from lcsc.search.journal import Journal
from lcsc.search.provenance import write_search_outputs
from lcsc.search.runner import SearchResult, coefficient_hash, run_search
from lcsc.search.space import SearchSpace, default_half_lives, ema_coefficients, half_life_to_rate

__all__ = [
    "EvolutionParams",
    "Journal",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "coefficient_hash",
    "default_half_lives",
    "ema_coefficients",
    "half_life_to_rate",
    "propose_generation",
    "run_search",
    "write_search_outputs",
]
