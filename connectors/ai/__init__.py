"""The AI provider connector: an OpenAI-compatible chat-completions API.

- ``connectors.ai.services``: create, update, delete and test a provider (needs
  ``connectors.manage``; every write audited; the API key is write-only).
- ``connectors.ai.client.chat_complete``: one chat completion through
  ``parley.outbound``, errors classified (:class:`AiProviderError`).
- ``connectors.ai.selectors``: reads, including the provider the bots use.

The bots' AI answer node (``bots.ai``) calls the client; this package never
imports ``bots``.
"""
