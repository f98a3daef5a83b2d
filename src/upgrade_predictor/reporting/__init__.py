"""What a run says, and the self-contained HTML report that shows it."""
