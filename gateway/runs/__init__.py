"""Background runs: submit now, poll, fetch the result, follow (and resume) the events, cancel."""
