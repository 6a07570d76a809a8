"""A LangChain `BaseRetriever` over `recommend`: the query is the situation, the documents are the items.

    retriever = InterestLensRetriever(agent=agent, user_id="alice", k=5)
    docs = retriever.invoke("something for a rainy evening")

Each `Document` holds the item's text; its metadata carries the id, title, score, the intents it answers, the
justification and the user's own words it cites (evidence), so a RAG chain can show why. Catalog text is data:
a chain that puts it in a prompt should fence it (as interestlens' own prompts do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from interestlens.agent.models import RecommendationResult
from interestlens.stores.ids import validate_user_id

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent


def recommendation_documents(result: RecommendationResult) -> list[Document]:
    """One Document per recommended item, best first."""
    intents = {i.id: i.name for i in result.intents}
    return [
        Document(
            page_content=r.item.text,
            id=r.item.id,
            metadata={
                "item_id": r.item.id,
                "title": r.item.title,
                "score": r.score,
                "rank": r.rank,
                "intents": [intents.get(i, i) for i in r.intent_ids],
                "justification": r.justification,
                "evidence": [e.text for e in r.cited_evidence],
                "user_id": result.user_id,
            },
        )
        for r in result.recommendations
    ]


class InterestLensRetriever(BaseRetriever):
    """Recommendations for one user as retrieved documents; the query is the current context."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    agent: Any = Field(description="An InterestAgent.")
    user_id: str
    k: int = Field(default=5, ge=1, le=100)
    where: dict[str, Any] | None = None

    def model_post_init(self, __context: Any) -> None:
        validate_user_id(self.user_id)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        agent: InterestAgent = self.agent
        result = agent.recommend(self.user_id, context=query.strip() or None, k=self.k, where=self.where)
        return recommendation_documents(result)
