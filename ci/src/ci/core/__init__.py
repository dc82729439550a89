"""Pure decisions of the pipeline: no dagger import here, everything is testable on the host."""
