"""Use cases and the request/grant state machine. No Slack, no boto3, no scheduler here."""
