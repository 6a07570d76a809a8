"""`interestlens chat`: a minimal terminal assistant over the tool registry.

The conversation goes to `observe` as chat messages: your turns are observed, the assistant's last reply is
context, so "yes, more like that" after a suggestion is a like of the suggested item. Requests, questions
and chit-chat are not stored as interests. A message that asks for something ("recommend", "suggest",
"what should I", or any question) is answered with the top items, each with its justification and your
quoted words. Commands: /like ID [note], /dislike ID [note], /seen ID, /history, /undo, /profile, /forget,
/help, /quit.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.markup import escape

from interestlens.agent.errors import InterestLensError, UnknownIdError
from interestlens.tools.render import assistant_reply, make_console, print_observed, print_recommendations, print_text
from interestlens.tools.specs import TOOLS_BY_NAME
from interestlens.tools.tool_args import MAX_CONTEXT_CHARS

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent

_ASKS_FOR_ITEMS = re.compile(r"\b(recommend\w*|suggest\w*|what should i)\b|\?", re.IGNORECASE)
HELP = (
    "Tell me what you like or dislike; ask for recommendations any time. Commands: /like ID [note] "
    "/dislike ID [note] /seen ID /history /undo /profile /forget /quit"
)
_FEEDBACK = {"/like": "liked", "/dislike": "disliked", "/seen": "seen"}


def wants_recommendations(message: str) -> bool:
    return bool(_ASKS_FOR_ITEMS.search(message))


def _command(agent: InterestAgent, user_id: str, message: str, console: Console) -> bool:
    """Run one /command; False means quit."""
    parts = message.split(maxsplit=2)
    command = parts[0].lower()
    if command in ("/quit", "/exit"):
        return False
    if command == "/help":
        console.print(HELP)
    elif command == "/profile":
        try:
            print_text(console, TOOLS_BY_NAME["profile"].invoke(agent, {"user_id": user_id}))
        except UnknownIdError:
            console.print("No profile yet: tell me about things you like.")
    elif command == "/forget":
        TOOLS_BY_NAME["forget"].invoke(agent, {"user_id": user_id})
        console.print(f"Forgot everything about {escape(user_id)}.")
    elif command in _FEEDBACK:
        if len(parts) < 2:
            console.print(f"usage: {command} ITEM_ID [note]")
            return True
        args = {"user_id": user_id, "item_id": parts[1], "feedback": _FEEDBACK[command],
                "note": parts[2] if len(parts) > 2 else None}
        print_text(console, TOOLS_BY_NAME["feedback"].invoke(agent, args))
    elif command == "/history":
        try:
            result = TOOLS_BY_NAME["history"].invoke(agent, {"user_id": user_id, "limit": 10})
            print_text(console, result)
        except UnknownIdError:
            console.print("No history yet.")
    elif command == "/undo":
        args = {"user_id": user_id, "operation": "undo"}
        print_text(console, TOOLS_BY_NAME["edit_profile"].invoke(agent, args))
    else:
        console.print(f"unknown command {escape(command)}. {HELP}")
    return True


def run_chat(
    agent: InterestAgent,
    user_id: str,
    *,
    k: int = 5,
    stdin: TextIO | None = None,
    console: Console | None = None,
) -> None:
    stdin = stdin or sys.stdin
    console = console or make_console()
    interactive = stdin.isatty()
    TOOLS_BY_NAME["profile"].parse_args({"user_id": user_id})  # a bad user id fails before the loop starts
    console.print(f"interestlens chat as {escape(user_id)}. {HELP}")
    last_reply: str | None = None  # the assistant's previous turn: context for "more like that"
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
            try:
                if not _command(agent, user_id, message, console):
                    break
            except InterestLensError as e:
                console.print(f"error: {escape(str(e))}")
            continue
        try:
            turns = [{"role": "assistant", "content": last_reply}] if last_reply else []
            turns.append({"role": "user", "content": message})
            observed = TOOLS_BY_NAME["observe"].invoke(agent, {"user_id": user_id, "messages": turns})
            print_observed(console, observed)  # type: ignore[arg-type]
            if wants_recommendations(message):
                result = TOOLS_BY_NAME["recommend"].invoke(
                    agent, {"user_id": user_id, "context": message[:MAX_CONTEXT_CHARS], "k": k}
                )
                print_recommendations(console, result)  # type: ignore[arg-type]
                last_reply = assistant_reply(result) or last_reply  # type: ignore[arg-type]
        except UnknownIdError:
            console.print("I don't know enough about you yet: tell me about things you like.")
        except InterestLensError as e:
            console.print(f"error: {escape(str(e))}")
    console.print("bye.")
