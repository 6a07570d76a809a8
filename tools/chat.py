"""`interestlens chat`: a minimal terminal assistant over the tool registry.

Every message is observed (the profile grows as you talk). A message that asks for something
("recommend", "suggest", "what should I", or any question) is also answered with the top items, each with
its justification and the user's quoted words. Commands: /profile, /forget, /help, /quit.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.markup import escape

from interestlens.agent.errors import InterestLensError, UnknownIdError
from interestlens.agent.models import ObserveResult, RecommendationResult
from interestlens.tools.specs import MAX_CONTEXT_CHARS, TOOLS_BY_NAME, render_text

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent

_ASKS_FOR_ITEMS = re.compile(r"\b(recommend\w*|suggest\w*|what should i)\b|\?", re.IGNORECASE)
HELP = "Tell me what you like or dislike; ask for recommendations any time. Commands: /profile /forget /quit"


def wants_recommendations(message: str) -> bool:
    return bool(_ASKS_FOR_ITEMS.search(message))


def _print_observed(console: Console, result: ObserveResult) -> None:
    if result.added:
        console.print(
            "noted: "
            + escape(
                ", ".join(
                    f"{'dislikes' if i.polarity.value == 'dislike' else 'likes'} {i.name}"
                    for i in result.added
                )
            )
        )
    if result.reinforced:
        console.print("reinforced: " + escape(", ".join(i.name for i in result.reinforced)))


def _print_recommendations(console: Console, result: RecommendationResult) -> None:
    from interestlens.tools.cli import print_recommendations

    print_recommendations(console, result)


def run_chat(
    agent: InterestAgent,
    user_id: str,
    *,
    k: int = 5,
    stdin: TextIO | None = None,
    console: Console | None = None,
) -> None:
    stdin = stdin or sys.stdin
    console = console or Console(highlight=False, soft_wrap=True)
    interactive = stdin.isatty()
    TOOLS_BY_NAME["profile"].parse_args({"user_id": user_id})  # a bad user id fails before the loop starts
    console.print(f"interestlens chat as {escape(user_id)}. {HELP}")
    while True:
        if interactive:
            console.print("[bold]you>[/bold] ", end="")
        line = stdin.readline()
        if not line:  # end of input
            break
        message = line.strip()
        if not message:
            continue
        if message.startswith("/"):
            command = message.split()[0].lower()
            if command in ("/quit", "/exit"):
                break
            if command == "/help":
                console.print(HELP)
            elif command == "/profile":
                try:
                    console.print(
                        escape(render_text(TOOLS_BY_NAME["profile"].invoke(agent, {"user_id": user_id})))
                    )
                except UnknownIdError:
                    console.print("No profile yet: tell me about things you like.")
            elif command == "/forget":
                TOOLS_BY_NAME["forget"].invoke(agent, {"user_id": user_id})
                console.print(f"Forgot everything about {escape(user_id)}.")
            else:
                console.print(f"unknown command {escape(command)}. {HELP}")
            continue
        try:
            observed = TOOLS_BY_NAME["observe"].invoke(agent, {"user_id": user_id, "texts": [message]})
            _print_observed(console, observed)  # type: ignore[arg-type]
            if wants_recommendations(message):
                result = TOOLS_BY_NAME["recommend"].invoke(
                    agent, {"user_id": user_id, "context": message[:MAX_CONTEXT_CHARS], "k": k}
                )
                _print_recommendations(console, result)  # type: ignore[arg-type]
        except UnknownIdError:
            console.print("I don't know enough about you yet: tell me about things you like.")
        except InterestLensError as e:
            console.print(f"error: {escape(str(e))}")
    console.print("bye.")
