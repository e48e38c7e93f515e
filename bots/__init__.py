"""Bot flows: engine, NLU, knowledge base and guardrails for the AI node."""
