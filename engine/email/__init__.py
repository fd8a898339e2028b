"""Building and sending email: SMTP, Gmail, tracking."""
