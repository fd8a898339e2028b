"""Block Kit builders: plain data in, Slack's JSON out; no session, no client, no clock."""
