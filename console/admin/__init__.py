"""The owner and marketer console: dashboard, members, program settings, tiers, rewards, promotions."""
