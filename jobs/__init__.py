"""RQ jobs. Each opens its own Session, commits, and sends Zalo messages only after the commit."""
