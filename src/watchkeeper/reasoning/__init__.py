"""The reasoning layer: model providers that refine and explain what the local pipeline found, the local
assessment and verifier that stand in when there is no provider, and the incident reports."""
