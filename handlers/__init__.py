"""The Slack edge: listeners, Block Kit builders and the notifier."""
