"""Training a published version's intent model (in the worker, at publish).

The version's intent routers' intents (examples merged by name) train one
``bots.nlu.IntentModel``; its ``to_bytes()`` (arrays and JSON, never pickle) is stored
in ``FlowVersion.intent_model`` and ``training`` becomes ``ready`` (``failed`` when the
examples cannot train a model, ``none`` when there are no intents). The engine loads it
per version (``bots.engine.version_model``); a version is immutable once published, so
training it again gives the same model and is harmless.
"""

from __future__ import annotations

import logging

from bots import nlu
from bots.engine import version_intents
from bots.graph import GraphError, parse
from bots.models import FlowVersion

logger = logging.getLogger(__name__)


def flow_version_train(*, version_id: int) -> str:
    """Train ``version_id``'s intent model; returns the version's training state."""
    version = FlowVersion.objects.filter(pk=version_id).first()
    if version is None:
        return "missing"
    try:
        intents = version_intents(parse(version.graph))
    except GraphError:
        intents, failed = {}, True
    else:
        failed = False
    if failed:
        state, blob = FlowVersion.Training.FAILED, None
    elif not intents:
        state, blob = FlowVersion.Training.NONE, None
    else:
        try:
            blob = nlu.IntentModel.train(intents).to_bytes()
            state = FlowVersion.Training.READY
        except nlu.NLUError as exc:
            logger.warning("flow version %s: training failed (%s)", version_id, exc.code)
            state, blob = FlowVersion.Training.FAILED, None
    FlowVersion.objects.filter(pk=version_id).update(training=state, intent_model=blob)
    return state
