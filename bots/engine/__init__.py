"""The flow engine: the walk through a graph, in the worker and in the simulator.

:func:`advance` is the whole walk: from a node, run node after node (each type's runner
in ``bots.nodes``) until one waits for the customer (an ask), the run ends (an end, a
handoff, a port with no edge) or the step cap is reached. It is deterministic: the same
graph, variables and messages give the same path. What a node needs from the world
(sending, the intent model, the knowledge base, the AI answer, HTTP, the clock) comes
from the :class:`Context`, so the worker (``bots.engine.worker``) and the simulator
(``bots.engine.simulator``) run exactly the same runners (``bots.engine.walk``).

In the worker, once per inbound message of a conversation (``bots.tasks``):

* an open run of the conversation goes on, on the version it started on; with none,
  a flow serving the inbox (enabled, with a live version) whose trigger matches starts
  a run on its live version;
* the run (``FlowRun``) is saved after every step, with what the step sent, in one
  transaction; variables are encrypted, bound to the row;
* at most ``BOTS_STEP_CAP`` steps per message (a loop), then a handoff ``step_cap``;
  a node that fails hands off with its reason (outcome ``failed``);
* a conversation a person took over ends the run (outcome ``ended``).
"""

from __future__ import annotations

from bots.engine.simulator import Simulation, simulate
from bots.engine.walk import (
    DEFAULT_STEP_CAP,
    Context,
    Walked,
    advance,
    caches_clear,
    step_cap,
    version_intents,
    version_model,
)
from bots.engine.worker import (
    bot_may_take,
    inbox_has_greeting_flow,
    message_process,
    messages_waiting,
    run_end_for_human,
    variables_encrypt,
    variables_of,
)

__all__ = [
    "DEFAULT_STEP_CAP",
    "Context",
    "Simulation",
    "Walked",
    "advance",
    "bot_may_take",
    "caches_clear",
    "inbox_has_greeting_flow",
    "message_process",
    "messages_waiting",
    "run_end_for_human",
    "simulate",
    "step_cap",
    "variables_encrypt",
    "variables_of",
    "version_intents",
    "version_model",
]
