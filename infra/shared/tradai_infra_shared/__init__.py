"""Configuration, naming, stack references and builders shared by the TradAI Pulumi stacks."""
