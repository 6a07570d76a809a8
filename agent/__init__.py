"""interestlens.agent: the typed core (models, settings, stages) and the `InterestAgent` entry object."""

from interestlens.agent.config import Settings
from interestlens.agent.models import (
    Candidate,
    EvidenceSpan,
    Explanation,
    Intent,
    Interaction,
    InterestProfile,
    Item,
    ObserveResult,
    Polarity,
    Recommendation,
    RecommendationResult,
    SourceText,
    SubInterest,
    Topic,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent


def __getattr__(name: str) -> object:
    # PEP 562: InterestAgent is loaded on first access. This file runs before any `interestlens.agent.*`
    # module, including the contracts stores/ import (models, errors, protocols); importing the service here
    # would make every store import pull in the service, which imports the stores (tests/test_architecture.py).
    if name == "InterestAgent":
        from interestlens.agent.service import InterestAgent

        return InterestAgent
    raise AttributeError(name)

__all__ = [
    "Candidate", "EvidenceSpan", "Explanation", "Intent", "Interaction", "InterestAgent", "InterestProfile",
    "Item", "ObserveResult", "Polarity", "Recommendation", "RecommendationResult", "Settings", "SourceText",
    "SubInterest", "Topic",
]
