"""Marketing services the console calls (campaigns); what RQ runs stays in jobs/."""
