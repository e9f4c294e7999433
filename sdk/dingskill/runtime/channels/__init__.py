"""Channels that bring messages into the Pipeline: DingTalk Stream mode and HTTP webhook."""
